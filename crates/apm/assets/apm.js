// throughline APM: a little progressive enhancement. Every page works without it.
"use strict";

// "/" focuses the trace-id box; a pasted 32-hex trace id opens its trace directly.
document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  if (ev.key === "/" && !typing) {
    const box = document.getElementById("tid");
    if (box) { ev.preventDefault(); box.focus(); }
  }
});
document.addEventListener("paste", (ev) => {
  const t = ev.target;
  if (t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement) return;
  const text = (ev.clipboardData && ev.clipboardData.getData("text") || "").trim();
  if (/^[0-9a-fA-F]{32}$/.test(text)) window.location.href = "/trace/" + text.toLowerCase();
});

// Waterfall collapse: rows are siblings in depth-first order with data-d = depth, so a
// subtree is the run of following rows that are deeper. One linear pass per toggle.
function setOpen(row, open) {
  row.setAttribute("aria-expanded", String(open));
  const btn = row.querySelector("button.t");
  if (btn) {
    btn.textContent = open ? "\u25be" : "\u25b8";
    btn.setAttribute("aria-label", btn.getAttribute("aria-label").replace(/^(expand|collapse)/, open ? "collapse" : "expand"));
  }
  const depth = Number(row.dataset.d);
  let closedBelow = Infinity; // rows deeper than this stay hidden (a collapsed descendant)
  for (let r = row.nextElementSibling; r; r = r.nextElementSibling) {
    const d = Number(r.dataset.d);
    if (d <= depth) break;
    if (!open) { r.classList.add("h"); continue; }
    if (d <= closedBelow) closedBelow = Infinity;
    r.classList.toggle("h", d > closedBelow);
    if (d <= closedBelow && r.getAttribute("aria-expanded") === "false" && closedBelow === Infinity) closedBelow = d;
  }
}
document.addEventListener("click", (ev) => {
  const btn = ev.target instanceof Element && ev.target.closest("button.t");
  if (btn) {
    const row = btn.closest(".r");
    setOpen(row, row.getAttribute("aria-expanded") === "false");
    return;
  }
  const tool = ev.target instanceof Element && ev.target.closest("[data-action]");
  if (!tool) return;
  const rows = document.querySelectorAll(".rows .r");
  const expand = tool.dataset.action === "expand-all";
  for (const r of rows) {
    if (r.hasAttribute("aria-expanded")) {
      r.setAttribute("aria-expanded", String(expand));
      const b = r.querySelector("button.t");
      const open = r.getAttribute("aria-expanded") === "true";
      if (b) {
        b.textContent = open ? "\u25be" : "\u25b8";
        b.setAttribute("aria-label", b.getAttribute("aria-label").replace(/^(expand|collapse)/, open ? "collapse" : "expand"));
      }
    }
    r.classList.toggle("h", !expand && Number(r.dataset.d) > 0);
  }
});

// Bring the selected span into view below the sticky header.
window.addEventListener("DOMContentLoaded", () => {
  const sel = document.querySelector(".r.sel");
  if (sel && sel.getBoundingClientRect().bottom > window.innerHeight) sel.scrollIntoView({ block: "center" });
});
