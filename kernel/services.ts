import type { DependencyContainer } from 'tsyringe';
import { requireCjs } from './cjs.js';
import { KernelError } from './errors.js';

requireCjs('reflect-metadata');
const { container: rootContainer, instanceCachingFactory } = requireCjs(
  'tsyringe',
) as typeof import('tsyringe');

/**
 * A typed name for a service. Plugins ask for a token, never for a provider: whoever registered
 * it (the kernel or another plugin) stays unknown to them.
 */
export class ServiceToken<T> {
  declare readonly type: T;
  constructor(readonly name: string) {}
  toString(): string {
    return `service(${this.name})`;
  }
}

export function defineToken<T>(name: string): ServiceToken<T> {
  return new ServiceToken<T>(name);
}

/** What a plugin sees of dependency injection. */
export interface Services {
  get<T>(token: ServiceToken<T>): T;
  has(token: ServiceToken<unknown>): boolean;
  /** Register a value, or a factory called once on first use. */
  provide<T>(token: ServiceToken<T>, provider: { value: T } | { factory: () => T }): void;
}

/** The kernel's DI container, a tsyringe child container per kernel instance. */
export class ServiceRegistry implements Services {
  private readonly container: DependencyContainer = rootContainer.createChildContainer();
  private readonly live = new Set<string>();

  get<T>(token: ServiceToken<T>): T {
    if (!this.live.has(token.name)) {
      throw new KernelError(
        'ESERVICE_MISSING',
        `no provider for ${token}: enable the plugin that provides it`,
      );
    }
    return this.container.resolve<T>(token.name);
  }

  has(token: ServiceToken<unknown>): boolean {
    return this.live.has(token.name);
  }

  provide<T>(token: ServiceToken<T>, provider: { value: T } | { factory: () => T }): void {
    if (this.live.has(token.name)) {
      throw new KernelError('ESERVICE_DUPLICATE', `${token} is already provided`);
    }
    if ('value' in provider) this.container.register<T>(token.name, { useValue: provider.value });
    else
      this.container.register<T>(token.name, {
        useFactory: instanceCachingFactory<T>(() => provider.factory()),
      });
    this.live.add(token.name);
  }

  /** Forget a service (its provider stopped); a later provide() registers it anew. */
  remove(token: ServiceToken<unknown>): void {
    this.live.delete(token.name);
  }
}
