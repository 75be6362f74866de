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

  // Keep the newest message in view as answers stream in.
  const seen = new WeakMap();
  new MutationObserver(function () {
    document.querySelectorAll(".chat-scroll[data-v]").forEach(function (box) {
      if (seen.get(box) === box.dataset.v) return;
      seen.set(box, box.dataset.v);
      box.scrollTop = box.scrollHeight;
    });
  }).observe(document.documentElement, { childList: true, subtree: true });
})();
