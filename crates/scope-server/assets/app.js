// Scope console: the little the pages need beyond HTML. No inline script
// (the CSP forbids it); everything works without this file except copying.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  // A page that shows a secret once replaces its history entry with the
  // list it came from: reload or back never shows (or re-posts) it again.
  const once = document.querySelector("[data-replace-url]");
  if (once && window.history && history.replaceState) {
    history.replaceState(null, "", once.getAttribute("data-replace-url"));
  }

  for (const button of document.querySelectorAll("button[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.getAttribute("data-copy"));
      if (!source) return;
      const text = source.textContent;
      let ok = false;
      try {
        await navigator.clipboard.writeText(text);
        ok = true;
      } catch (_) {
        // No clipboard API (plain http on another host): select the text
        // so Ctrl+C copies it.
        const range = document.createRange();
        range.selectNodeContents(source);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        try { ok = document.execCommand("copy"); } catch (_) { ok = false; }
      }
      const label = button.textContent;
      button.textContent = ok ? "Copied" : "Press Ctrl+C";
      setTimeout(() => { button.textContent = label; }, 1500);
    });
  }
});
