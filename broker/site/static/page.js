// Progressive enhancement of the key page (docs/key-page.md). Without this file every
// form still works: it only sends forms without a reload and keeps key health current.
"use strict";

(function () {
  const POLL_MS = 5000; // a consumer's verification shows this long after it reaches the broker

  function replaceSlot(id, html) {
    const doc = new DOMParser().parseFromString(html, "text/html");
    const fresh = doc.getElementById("slot-" + id);
    const target = fresh ? document.getElementById("slot-" + id) : document.getElementById("main");
    const source = fresh || doc.getElementById("main");
    if (!target || !source) return null;
    const node = document.importNode(source, true);
    target.replaceWith(node);
    return node;
  }

  // Key forms and "Check now" forms: sent without a reload, the slot replaced by the
  // answer's (the same page a browser without this file gets after the redirect).
  const BUSY = { "key-form": "Checking with the exchange…", "check-form": "Asking…" };

  async function submitKey(event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement)) return;
    const kind = Object.keys(BUSY).find(function (k) { return form.classList.contains(k); });
    if (!kind) return;
    event.preventDefault();
    const id = form.dataset.slot;
    const body = new URLSearchParams(new FormData(form));
    if (kind === "key-form") form.reset(); // the inputs are empty from here on
    const button = form.querySelector("button[type=submit]");
    const label = button.textContent;
    button.disabled = true;
    button.textContent = BUSY[kind];
    let html;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: body,
        credentials: "same-origin",
        cache: "no-store",
      });
      html = await response.text();
    } catch (err) {
      button.disabled = false;
      button.textContent = label;
      return;
    }
    const node = replaceSlot(id, html);
    const focus = node && (node.querySelector(".result") || node.querySelector("h1"));
    if (focus) focus.focus();
  }

  async function poll(url) {
    let data;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return;
      data = await response.json();
    } catch (err) {
      return;
    }
    for (const key of data.keys) {
      const box = document.querySelector('[data-health-for="' + key.id + '"]');
      if (!box || box.dataset.state === key.state) continue;
      box.dataset.state = key.state;
      const badge = box.querySelector(".status");
      badge.dataset.status = key.status;
      badge.textContent = key.label;
      badge.className = "status tone-" + key.tone;
      box.querySelector(".status-meaning").textContent = key.meaning;
      box.querySelector(".status-checked").textContent = key.checked;
      box.querySelector(".status-requested").textContent = key.requested;
    }
  }

  document.addEventListener("submit", submitKey);
  const heading = document.getElementById("account-heading");
  if (heading && heading.dataset.keysUrl) {
    const url = heading.dataset.keysUrl;
    setInterval(function () { poll(url); }, POLL_MS);
  }
})();
