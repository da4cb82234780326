// Myriam console: live updates of the leads list (server-sent events). No other script runs on
// the console; the page works without it.
"use strict";
(function () {
  const body = document.querySelector("tbody[data-live]");
  if (!body || !window.EventSource) return;
  const status = document.getElementById("live-status");
  const source = new EventSource(body.getAttribute("data-live"));
  source.addEventListener("open", function () {
    if (status) status.textContent = "Mise à jour en direct active.";
  });
  source.addEventListener("lead", function (event) {
    const data = JSON.parse(event.data);
    const holder = document.createElement("tbody");
    holder.innerHTML = data.html; // rendered and escaped by the gateway
    const row = holder.firstElementChild;
    if (!row) return;
    row.classList.add("fresh");
    const old = document.getElementById("lead-" + data.id);
    if (old) {
      old.replaceWith(row);
    } else {
      body.prepend(row);
      const empty = document.querySelector("p.empty");
      if (empty) empty.remove();
      if (status) status.textContent = "Nouveau lead reçu.";
    }
  });
  source.addEventListener("error", function () {
    if (status) status.textContent = "Mise à jour en direct interrompue; rechargez la page.";
  });
})();
