/** Tiny DOM helpers: the panels are small enough that a framework would outweigh them. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<"className" | "id" | "title" | "textContent" | "type", string>> = {},
  children: readonly (Node | string)[] = [],
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined) continue;
    if (key === "className") e.className = value;
    else if (key === "textContent") e.textContent = value;
    else e.setAttribute(key, value);
  }
  for (const child of children) e.append(child);
  return e;
}

/** Collects teardown steps so a panel's dispose() undoes exactly what mount() did. */
export class Disposers {
  private readonly steps: (() => void)[] = [];
  add(step: () => void): void {
    this.steps.push(step);
  }
  listen<K extends keyof HTMLElementEventMap>(target: HTMLElement | Window, type: K, handler: (event: HTMLElementEventMap[K]) => void): void {
    target.addEventListener(type, handler as EventListener);
    this.add(() => target.removeEventListener(type, handler as EventListener));
  }
  dispose(): void {
    for (const step of this.steps.splice(0).reverse()) step();
  }
}

export function downloadText(filename: string, text: string, type = "text/csv"): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = el("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  // The click has started the download synchronously; the URL is no longer needed after this task.
  setTimeout(() => URL.revokeObjectURL(url), 0);
}

export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
