// Citation badges: a click shows that answer's sources and brings the cited passage into view.
// Delegated from the document, since the panels are re-rendered on every update.
(function () {
  document.addEventListener("click", function (event) {
    const badge = event.target.closest("button.cite[data-turn]");
    if (!badge) return;
    event.preventDefault();
    const turn = badge.dataset.turn;
    document.querySelectorAll(".src-group").forEach(function (group) {
      group.hidden = group.dataset.turn !== turn;
    });
    const card = document.getElementById("src-" + turn + "-" + badge.dataset.n);
    if (!card) return;
    document.querySelectorAll(".src.active").forEach(function (c) { c.classList.remove("active"); });
    card.classList.add("active");
    // scroll the panel itself so the whole card (title, context, quote) starts at its top
    const panel = card.closest(".sources");
    if (panel) {
      const offset = card.getBoundingClientRect().top - panel.getBoundingClientRect().top;
      panel.scrollTo({ top: panel.scrollTop + offset - 6, behavior: "smooth" });
    } else {
      card.scrollIntoView({ behavior: "smooth", block: "start" });
    }
  });

  // The document viewer: a source card (or its "Open in document" button) asks the app for the document
  // through a hidden textbox; the reply fills #viewer with a dialog whose highlight gets focus and view.
  let opener = null;
  function openDocument(turn, n, from) {
    const box = document.querySelector("#viewer-req textarea, #viewer-req input");
    if (!box) return;
    opener = from;
    box.value = turn + ":" + n + ":" + Date.now();
    box.dispatchEvent(new Event("input", { bubbles: true }));
  }
  function closeViewer() {
    const dialog = document.querySelector(".viewer-dialog:not([hidden])");
    if (!dialog) return false;
    dialog.hidden = true;
    if (opener && document.body.contains(opener)) opener.focus();
    return true;
  }
  document.addEventListener("click", function (event) {
    if (event.target.closest(".viewer-close")) { closeViewer(); return; }
    const card = event.target.closest(".src");
    if (!card || event.target.closest("a")) return;
    const button = card.querySelector("button.open-doc");
    openDocument(button.dataset.turn, button.dataset.n, button);
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && closeViewer()) event.preventDefault();
  });

  // Keep the newest message in view as answers stream in.
  const seen = new WeakMap();
  new MutationObserver(function () {
    document.querySelectorAll(".chat-scroll[data-v]").forEach(function (box) {
      if (seen.get(box) === box.dataset.v) return;
      seen.set(box, box.dataset.v);
      box.scrollTop = box.scrollHeight;
    });
    document.querySelectorAll(".viewer-dialog[data-v]").forEach(function (dialog) {
      if (seen.get(dialog) === dialog.dataset.v) return;
      seen.set(dialog, dialog.dataset.v);
      const mark = dialog.querySelector("#viewer-hl");
      if (mark) {
        mark.scrollIntoView({ block: "center" });
        mark.focus({ preventScroll: true });
      } else {
        dialog.querySelector(".viewer-close").focus();
      }
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
