/**
 * Proofreading: merge two segments, split one with seed points placed in the views, undo/redo from the
 * history, review status per segment, and a one-click refresh when an edit hits a conflict (409: a segment
 * it touches changed after the version it was decided on). Edits need an editor token, kept in this
 * browser's localStorage (never in the viewer state, which share links carry).
 *
 * Segments are "picked" by selecting them (a morphometrics row click, Neuroglancer's ctrl+right-click) or
 * with the Pick tool (a click in a view takes the segment under the mouse); the two newest picks are
 * merged, the newest is split and reviewed.
 */
import type { Vec3, ViewerBridge } from "../bridge.js";
import type { Live } from "../live.js";
import {
  EditError,
  REVIEW_STATUSES,
  describeOp,
  fetchOperations,
  fetchReview,
  fetchVersion,
  closeSession,
  getToken,
  openSession,
  historyEntries,
  merge,
  putReview,
  redoCandidate,
  setToken,
  split,
  undoCandidate,
  undoRedo,
  whoAmI,
  type EditResult,
  type HistoryEntry,
  type Review,
  type ReviewStatus,
  type Seed,
} from "../proofreading.js";
import { Settings, booleanOr } from "../settings.js";
import { Disposers, el, errorText } from "./dom.js";

export interface ProofreadingSettings {
  /** Move to each new version as it is announced (default); off, the panel offers Refresh instead. */
  follow: boolean;
}

export function proofreadingSettings(): Settings<ProofreadingSettings> {
  return new Settings<ProofreadingSettings>({ follow: true }, (json, defaults) => ({ follow: booleanOr(json.follow, defaults.follow) }));
}

const SEED_GROUPS = ["A", "B"] as const;
type SeedGroup = (typeof SEED_GROUPS)[number];
/** Merge takes two segments; more picks would be ambiguous about which two. */
const MAX_PICKED = 2;
const HISTORY_SHOWN = 50;

type Tool = "none" | "pick" | "seeds";

const fmt = (p: Vec3): string => p.map((c) => Math.round(c)).join(", ");

export function mountProofreading(body: HTMLElement, settings: Settings<ProofreadingSettings>, bridge: ViewerBridge, live: Live): { dispose(): void } {
  const disposers = new Disposers();
  body.classList.add("vemscope-proofreading-body");
  let alive = true;
  disposers.add(() => (alive = false));

  // --- token
  const tokenInput = el("input", { className: "vemscope-token", type: "password", title: "Editor token (vemscope token create DIR --user NAME --role editor)" });
  tokenInput.placeholder = "editor token";
  tokenInput.autocomplete = "off";
  const tokenSave = el("button", { className: "vemscope-token-save", textContent: "Save", title: "Keep this token in this browser" });
  const tokenForget = el("button", { className: "vemscope-token-forget", textContent: "Forget", title: "Remove the token from this browser" });
  const who = el("span", { className: "vemscope-who vemscope-status" });

  // --- version
  const versionText = el("span", { className: "vemscope-version" });
  const refreshButton = el("button", { className: "vemscope-refresh", textContent: "Refresh", title: "Load the newest version" });
  const follow = el("input", { className: "vemscope-follow", type: "checkbox", title: "Move to new versions as they are made" });

  // --- segments
  const pickedBox = el("span", { className: "vemscope-picked" });
  const pickTool = el("button", { className: "vemscope-pick-tool", textContent: "Pick", title: "Click in a view to pick the segment under the mouse" });
  const idInput = el("input", { className: "vemscope-pick-id", type: "number", title: "Segment id" });
  idInput.placeholder = "id";
  idInput.min = "1";
  const addId = el("button", { className: "vemscope-pick-add", textContent: "Add", title: "Pick the segment with this id" });
  const clearPicked = el("button", { className: "vemscope-pick-clear", textContent: "Clear" });
  const mergeButton = el("button", { className: "vemscope-merge", textContent: "Merge", title: "Merge the two picked segments (the smaller id survives)" });

  // --- split
  const splitTarget = el("span", { className: "vemscope-split-target" });
  const groupButtons = SEED_GROUPS.map((g) => {
    const b = el("button", { className: "vemscope-seed-group", textContent: g, title: `New seeds go to piece ${g}` });
    b.dataset.group = g;
    return b;
  });
  const seedTool = el("button", { className: "vemscope-seed-tool", textContent: "Place seeds", title: "Click in a view to add a seed point to the active piece" });
  const seedList = el("ol", { className: "vemscope-seeds" });
  const clearSeeds = el("button", { className: "vemscope-seeds-clear", textContent: "Clear seeds" });
  const splitButton = el("button", { className: "vemscope-split", textContent: "Split", title: "Split the picked segment between the seed groups" });

  // --- review
  const reviewTarget = el("span", { className: "vemscope-review-target" });
  const reviewState = el("span", { className: "vemscope-review-state vemscope-status" });
  const reviewButtons = REVIEW_STATUSES.map((s) => {
    const b = el("button", { className: "vemscope-review-set", textContent: s, title: `Mark the segment ${s}` });
    b.dataset.status = s;
    return b;
  });
  const comment = el("textarea", { className: "vemscope-review-comment", title: "Comment (what needs fixing)" });
  comment.placeholder = "comment (e.g. what needs fixing)";
  comment.rows = 2;

  // --- history
  const undoButton = el("button", { className: "vemscope-undo", textContent: "Undo", title: "Undo the newest edit that is not undone" });
  const redoButton = el("button", { className: "vemscope-redo", textContent: "Redo", title: "Redo the newest undone edit" });
  const historyList = el("ol", { className: "vemscope-history" });

  // --- messages
  const message = el("div", { className: "vemscope-message" });

  const section = (title: string, ...children: (Node | string)[]) => el("section", { className: "vemscope-proof-section" }, [el("h4", { textContent: title }), ...children]);
  body.append(
    section("Token", el("div", { className: "vemscope-row-control" }, [tokenInput, tokenSave, tokenForget]), who),
    el("div", { className: "vemscope-row-control" }, [versionText, refreshButton, el("label", {}, [follow, " follow live edits"])]),
    message,
    section(
      "Segments",
      el("div", { className: "vemscope-row-control" }, [pickedBox]),
      el("div", { className: "vemscope-row-control" }, [pickTool, idInput, addId, clearPicked, mergeButton]),
    ),
    section(
      "Split",
      splitTarget,
      el("div", { className: "vemscope-row-control" }, [seedTool, "piece", ...groupButtons, clearSeeds, splitButton]),
      seedList,
    ),
    section("Review", el("div", {}, [reviewTarget, " ", reviewState]), el("div", { className: "vemscope-row-control" }, reviewButtons), comment),
    section("History", el("div", { className: "vemscope-row-control" }, [undoButton, redoButton]), historyList),
  );

  let picked: number[] = [];
  let seeds: Seed[] = [];
  let activeGroup: SeedGroup = "A";
  let tool: Tool = "none";
  let stopTool: (() => void) | undefined;
  let busy = false;
  let history: HistoryEntry[] = [];
  let review: Review | undefined;
  let user: string | undefined;

  const target = (): number | undefined => picked[picked.length - 1];

  const showMessage = (text: string, kind: "info" | "error" | "conflict" = "info"): void => {
    message.className = `vemscope-message ${kind}`;
    message.replaceChildren(text);
    if (kind === "conflict") {
      const again = el("button", { className: "vemscope-conflict-refresh", textContent: "Refresh", title: "Load the newest version, then edit again" });
      again.addEventListener("click", () => void refresh());
      message.append(" ", again);
    }
  };

  const render = (): void => {
    const { shown, latest, connection } = live.state;
    versionText.textContent = `version ${shown ?? "?"}${latest > (shown ?? 0) ? ` (newest ${latest})` : ""} · events ${connection}`;
    versionText.dataset.version = String(shown ?? "");
    follow.checked = settings.value.follow;
    const hasToken = getToken() !== null;
    who.textContent = user !== undefined ? `signed in as ${user}` : hasToken ? "token stored" : "no token: edits and reviews need an editor token";
    pickedBox.replaceChildren(
      picked.length === 0 ? "none picked" : "",
      ...picked.map((id) => {
        const chip = el("span", { className: "vemscope-chip", textContent: `${id} ` });
        chip.dataset.id = String(id);
        const x = el("button", { className: "vemscope-chip-remove", textContent: "×", title: `Unpick ${id}` });
        x.dataset.id = String(id);
        chip.append(x);
        return chip;
      }),
    );
    pickTool.classList.toggle("active", tool === "pick");
    seedTool.classList.toggle("active", tool === "seeds");
    for (const b of groupButtons) b.classList.toggle("active", b.dataset.group === activeGroup);
    const t = target();
    splitTarget.textContent = t === undefined ? "Pick the segment to split." : `Segment ${t}: place seeds in two pieces.`;
    seedList.replaceChildren(
      ...seeds.map((s, i) => {
        const item = el("li", { className: "vemscope-seed", textContent: `${s.group}: ${fmt(s.point)} nm ` });
        item.dataset.group = s.group;
        const x = el("button", { className: "vemscope-seed-remove", textContent: "×", title: "Remove this seed" });
        x.dataset.index = String(i);
        item.append(x);
        return item;
      }),
    );
    const groups = new Set(seeds.map((s) => s.group));
    mergeButton.disabled = busy || picked.length !== 2;
    splitButton.disabled = busy || t === undefined || seeds.length < 2 || groups.size < 2;
    reviewTarget.textContent = t === undefined ? "Pick a segment to review." : `Segment ${t}:`;
    reviewTarget.dataset.id = t === undefined ? "" : String(t);
    reviewState.textContent = review && review.segment === t ? `${review.status}${review.user ? ` (${review.user})` : ""}${review.comment ? ` — ${review.comment}` : ""}` : "";
    reviewState.dataset.status = review && review.segment === t ? review.status : "";
    for (const b of reviewButtons) {
      b.disabled = busy || t === undefined;
      b.classList.toggle("active", review?.segment === t && review?.status === b.dataset.status);
    }
    undoButton.disabled = busy || undoCandidate(history) === undefined;
    redoButton.disabled = busy || redoCandidate(history) === undefined;
    historyList.replaceChildren(
      ...history.slice(0, HISTORY_SHOWN).map((e) => {
        const item = el("li", { className: `vemscope-history-entry${e.undone ? " undone" : ""}`, textContent: `v${e.op.version} ${describeOp(e.op)} · ${e.op.user} ` });
        item.dataset.version = String(e.op.version);
        item.dataset.operation = String(e.op.operation_id);
        item.dataset.kind = e.op.kind;
        if (e.op.kind === "merge" || e.op.kind === "split") {
          const act = el("button", { className: "vemscope-history-act", textContent: e.undone ? "redo" : "undo" });
          act.dataset.operation = String(e.op.operation_id);
          act.dataset.action = e.undone ? "redo" : "undo";
          act.disabled = busy;
          item.append(act);
        }
        return item;
      }),
    );
  };

  const loadHistory = async (): Promise<void> => {
    try {
      const ops = await fetchOperations(0);
      if (!alive) return;
      history = historyEntries(ops);
      render();
    } catch (error) {
      if (alive) showMessage(`could not load the history: ${errorText(error)}`, "error");
    }
  };

  const loadReview = async (): Promise<void> => {
    const t = target();
    if (t === undefined) {
      review = undefined;
      render();
      return;
    }
    try {
      const r = await fetchReview(t);
      if (!alive || target() !== t) return;
      review = r;
      comment.value = r.comment;
      render();
    } catch (error) {
      // A segment retired by an edit has no review to show; that is not worth an error message.
      if (alive && !(error instanceof EditError && error.status === 404)) showMessage(`could not load the review: ${errorText(error)}`, "error");
    }
  };

  const pick = (id: number): void => {
    if (!Number.isSafeInteger(id) || id < 1) return;
    const before = target();
    picked = [...picked.filter((x) => x !== id), id].slice(-MAX_PICKED);
    // Seeds belong to the segment they were placed in.
    if (target() !== before) seeds = [];
    render();
    void loadReview();
  };

  const setTool = (next: Tool): void => {
    stopTool?.();
    stopTool = undefined;
    tool = tool === next ? "none" : next;
    if (tool === "pick") {
      stopTool = bridge.startPointTool((_point, segment) => {
        if (segment !== null && segment !== 0) pick(segment);
        else showMessage("no segment under the mouse", "error");
      });
    } else if (tool === "seeds") {
      stopTool = bridge.startPointTool((point) => {
        seeds = [...seeds, { point: [point[0], point[1], point[2]], group: activeGroup }];
        // The second piece needs a seed too; moving on saves a click in the usual two-seed split.
        if (activeGroup === "A" && !seeds.some((s) => s.group === "B")) activeGroup = "B";
        render();
      });
    }
    render();
  };
  disposers.add(() => stopTool?.());

  const baseVersion = async (): Promise<number> => live.state.shown ?? (await fetchVersion()).version;

  /** Runs one edit: on success the viewer moves to the new version; a 409 offers Refresh. */
  const runEdit = async (what: string, edit: (base: number) => Promise<EditResult>, after?: (r: EditResult) => void): Promise<void> => {
    if (busy) return;
    busy = true;
    showMessage(`${what}…`);
    render();
    try {
      const result = await edit(await baseVersion());
      await live.catchUp([result]);
      if (!alive) return;
      after?.(result);
      showMessage(`v${result.version}: ${what} done (${result.inputs.join(", ")} → ${result.outputs.join(", ")})`);
    } catch (error) {
      if (!alive) return;
      if (error instanceof EditError && error.isConflict) showMessage(`Conflict: ${error.message}`, "conflict");
      else showMessage(`${what} failed: ${errorText(error)}`, "error");
    } finally {
      busy = false;
      if (alive) {
        render();
        void loadHistory();
      }
    }
  };

  const refresh = async (): Promise<void> => {
    try {
      await live.catchUp();
      if (!alive) return;
      showMessage(`now at version ${live.state.shown ?? "?"}`);
      await loadHistory();
      await loadReview();
    } catch (error) {
      if (alive) showMessage(`refresh failed: ${errorText(error)}`, "error");
    }
  };

  const checkToken = async (): Promise<void> => {
    user = undefined;
    render();
    if (getToken() === null) return;
    try {
      const me = await whoAmI();
      if (!alive) return;
      user = `${me.user} (${me.role})`;
      render();
    } catch (error) {
      if (alive) showMessage(`token: ${errorText(error)}`, "error");
    }
  };

  disposers.listen(tokenSave, "click", () => {
    setToken(tokenInput.value);
    tokenInput.value = "";
    void checkToken();
    void openSession();
  });
  disposers.listen(tokenInput, "keydown", (event) => {
    if (event.key === "Enter") tokenSave.click();
  });
  disposers.listen(tokenForget, "click", () => {
    setToken(null);
    void closeSession();
    user = undefined;
    render();
  });
  disposers.listen(refreshButton, "click", () => void refresh());
  disposers.listen(follow, "change", () => {
    settings.update({ follow: follow.checked });
    if (follow.checked) void refresh();
  });
  disposers.listen(pickTool, "click", () => setTool("pick"));
  disposers.listen(seedTool, "click", () => setTool("seeds"));
  disposers.listen(addId, "click", () => {
    pick(idInput.valueAsNumber);
    idInput.value = "";
  });
  disposers.listen(clearPicked, "click", () => {
    picked = [];
    seeds = [];
    review = undefined;
    render();
  });
  disposers.listen(pickedBox, "click", (event) => {
    const b = event.target instanceof Element ? event.target.closest<HTMLElement>(".vemscope-chip-remove") : null;
    if (!b) return;
    picked = picked.filter((id) => String(id) !== b.dataset.id);
    seeds = [];
    render();
    void loadReview();
  });
  for (const b of groupButtons) {
    disposers.listen(b, "click", () => {
      activeGroup = b.dataset.group === "B" ? "B" : "A";
      render();
    });
  }
  disposers.listen(seedList, "click", (event) => {
    const b = event.target instanceof Element ? event.target.closest<HTMLElement>(".vemscope-seed-remove") : null;
    if (!b) return;
    const i = Number(b.dataset.index);
    seeds = seeds.filter((_, k) => k !== i);
    render();
  });
  disposers.listen(clearSeeds, "click", () => {
    seeds = [];
    activeGroup = "A";
    render();
  });
  disposers.listen(mergeButton, "click", () => {
    const [a, b] = picked;
    if (a === undefined || b === undefined) return;
    void runEdit(`merge ${a} + ${b}`, (base) => merge(base, a, b), (r) => {
      picked = r.outputs.slice(-MAX_PICKED);
      void loadReview();
    });
  });
  disposers.listen(splitButton, "click", () => {
    const t = target();
    if (t === undefined) return;
    const chosen = seeds;
    void runEdit(`split ${t}`, (base) => split(base, t, chosen), (r) => {
      seeds = [];
      activeGroup = "A";
      if (tool === "seeds") setTool("seeds");
      picked = r.outputs.slice(-MAX_PICKED);
      void loadReview();
    });
  });
  const undoOrRedo = (kind: "undo" | "redo", operation: number): void => {
    void runEdit(`${kind} #${operation}`, (base) => undoRedo(kind, base, operation), (r) => {
      // Picks that the operation retired make no sense any more; its results take their place.
      const gone = new Set(r.inputs.filter((id) => !r.outputs.includes(id)));
      if (picked.some((id) => gone.has(id))) picked = [...picked.filter((id) => !gone.has(id)), ...r.outputs].slice(-MAX_PICKED);
    });
  };
  disposers.listen(undoButton, "click", () => {
    const op = undoCandidate(history);
    if (op) undoOrRedo("undo", op.operation_id);
  });
  disposers.listen(redoButton, "click", () => {
    const op = redoCandidate(history);
    if (op) undoOrRedo("redo", op.operation_id);
  });
  disposers.listen(historyList, "click", (event) => {
    const b = event.target instanceof Element ? event.target.closest<HTMLElement>(".vemscope-history-act") : null;
    const operation = Number(b?.dataset.operation);
    if (!b || !Number.isSafeInteger(operation)) return;
    undoOrRedo(b.dataset.action === "redo" ? "redo" : "undo", operation);
  });
  for (const b of reviewButtons) {
    disposers.listen(b, "click", () => {
      const t = target();
      const status = REVIEW_STATUSES.find((s) => s === b.dataset.status);
      if (t === undefined || status === undefined || busy) return;
      void setReview(t, status);
    });
  }
  const setReview = async (segment: number, status: ReviewStatus): Promise<void> => {
    busy = true;
    render();
    try {
      const r = await putReview(segment, status, comment.value);
      if (!alive) return;
      review = r;
      showMessage(`segment ${segment} marked ${status}`);
    } catch (error) {
      if (alive) showMessage(`review failed: ${errorText(error)}`, "error");
    } finally {
      busy = false;
      if (alive) render();
    }
  };

  disposers.add(bridge.onSelectedSegmentChanged((id) => id !== null && pick(id)));
  disposers.add(
    live.subscribe(() => {
      render();
    }),
  );
  // Someone else's edit (or re-measurement) changes the log: the history follows the shown version.
  let historyVersion = live.state.shown;
  disposers.add(
    live.subscribe(() => {
      if (live.state.latest === historyVersion) return;
      historyVersion = live.state.latest;
      void loadHistory();
    }),
  );
  disposers.add(
    live.onReview((r) => {
      if (r.segment !== target()) return;
      void loadReview();
    }),
  );
  disposers.add(settings.subscribe(render));

  render();
  void checkToken();
  void loadHistory();
  // A segment selected before the panel opened is the natural first pick.
  const selected = bridge.hoveredSegment();
  if (selected !== null && selected !== 0) pick(selected);
  return { dispose: () => disposers.dispose() };
}
