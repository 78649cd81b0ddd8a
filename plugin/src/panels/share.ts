/** Share: stores the current viewer state on the server and shows a short link to it. */
import type { ViewerBridge } from "../bridge.js";
import { postState } from "../client.js";
import { Disposers, el, errorText } from "./dom.js";

export function mountShare(body: HTMLElement, bridge: ViewerBridge): { dispose(): void } {
  const disposers = new Disposers();
  body.classList.add("vemscope-share-body");
  const share = el("button", { className: "vemscope-share-button", textContent: "Share", title: "Save this view on the server and get a short link" });
  const link = el("input", { className: "vemscope-share-url", type: "text", title: "Short link to this view" });
  link.readOnly = true;
  link.placeholder = "press Share to get a link";
  const copy = el("button", { className: "vemscope-share-copy", textContent: "Copy", title: "Copy the link" });
  copy.disabled = true;
  const status = el("div", { className: "vemscope-status" });
  body.append(
    el("p", { textContent: "Saves the current view (layers, position, panels and their settings) and gives a short link to it." }),
    el("div", { className: "vemscope-row-control" }, [share]),
    el("div", { className: "vemscope-row-control" }, [link, copy]),
    status,
  );

  let alive = true;
  disposers.add(() => (alive = false));
  disposers.listen(share, "click", () => {
    share.disabled = true;
    status.textContent = "saving…";
    postState(bridge.stateJSON()).then(
      ({ url }) => {
        if (!alive) return;
        // The server answers a path; people paste links elsewhere, so show it absolute.
        link.value = new URL(url, window.location.href).href;
        copy.disabled = false;
        status.textContent = "Link ready.";
        share.disabled = false;
      },
      (error: unknown) => {
        if (!alive) return;
        status.textContent = `could not share: ${errorText(error)}`;
        share.disabled = false;
      },
    );
  });
  disposers.listen(copy, "click", () => {
    if (!link.value) return;
    link.select();
    navigator.clipboard.writeText(link.value).then(
      () => {
        if (alive) status.textContent = "Copied.";
      },
      // Clipboard access is refused outside secure contexts (plain http on a LAN address).
      () => {
        if (alive) status.textContent = document.execCommand("copy") ? "Copied." : "Select the link and copy it by hand.";
      },
    );
  });
  return { dispose: () => disposers.dispose() };
}
