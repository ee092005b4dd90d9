/**
 * V8's young generation during start-up. Loading the code and starting the plugins keep most of
 * what they allocate, and V8 answers a high survival rate by doubling the semi-spaces up to their
 * maximum (16 MB each in Node 20): an idle edgecore then holds up to 32 MB of young generation it
 * no longer uses until V8's memory reducer gives it back, 20 s or more later. While the kernel
 * starts, the semi-spaces stay at their initial size (the survivors go to the old generation, where
 * they belong anyway); once it is ready, V8 sizes them as usual again, so a busy process grows its
 * young generation as it needs. Flag values are read by V8 when it decides, so setting them at run
 * time works; no heap limit is set.
 */
import { setFlagsFromString } from 'node:v8';

/** V8's default `--semi-space-growth-factor` (V8 11.3, Node 20). */
const V8_SEMI_SPACE_GROWTH_FACTOR = 2;

/** Keeps the young generation at its initial size; returns the function that lets it grow again. */
export function holdYoungGeneration(): () => void {
  setFlagsFromString('--semi-space-growth-factor=1');
  return () => setFlagsFromString(`--semi-space-growth-factor=${V8_SEMI_SPACE_GROWTH_FACTOR}`);
}
