/**
 * Collects items and hands them over in one batch per turn of the event loop, so that many small
 * messages share one gRPC frame (the out-of-process throughput comes from here).
 */
export class Batcher<T> {
  private items: T[] = [];
  private scheduled = false;

  constructor(private readonly flush: (items: T[]) => void) {}

  add(item: T): void {
    this.items.push(item);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  private readonly run = (): void => {
    this.scheduled = false;
    const items = this.items;
    this.items = [];
    if (items.length) this.flush(items);
  };
}
