/**
 * Panel settings that live in Neuroglancer's viewer state (and therefore in URLs and shared
 * states). Kept free of Neuroglancer imports; plugin/src/ng/panels.ts adapts it to a Trackable.
 */
export class Settings<T extends object> {
  private current: T;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly defaults: T,
    /** Turns untrusted JSON (from a URL) into a valid value; must not throw on junk. */
    private readonly parse: (json: Record<string, unknown>, defaults: T) => T,
  ) {
    this.current = defaults;
  }

  get value(): T {
    return this.current;
  }

  update(patch: Partial<T>): void {
    const next = { ...this.current, ...patch };
    if (JSON.stringify(next) === JSON.stringify(this.current)) return;
    this.current = next;
    this.notify();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Only what differs from the defaults, so an untouched panel adds nothing to the URL. */
  toJSON(): Partial<T> | undefined {
    const out: Partial<T> = {};
    let any = false;
    for (const key of Object.keys(this.current) as (keyof T)[]) {
      if (JSON.stringify(this.current[key]) === JSON.stringify(this.defaults[key])) continue;
      out[key] = this.current[key];
      any = true;
    }
    return any ? out : undefined;
  }

  restore(json: unknown): void {
    const obj = typeof json === "object" && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
    this.current = this.parse(obj, this.defaults);
    this.notify();
  }

  reset(): void {
    if (this.current === this.defaults) return;
    this.current = this.defaults;
    this.notify();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

export function numberOr<T>(x: unknown, fallback: T): number | T {
  return typeof x === "number" && Number.isFinite(x) ? x : fallback;
}

export function stringOr<T>(x: unknown, fallback: T): string | T {
  return typeof x === "string" ? x : fallback;
}

export function booleanOr(x: unknown, fallback: boolean): boolean {
  return typeof x === "boolean" ? x : fallback;
}
