// healthd status page: refresh the server-rendered page from /status.json once a second.
// No framework, no inline script (the page's CSP forbids it). If healthd is away (a
// restart), the page says "reconnecting…" and keeps trying.
"use strict";
(function () {
  const SYMBOL = { healthy: "✓", degraded: "!", unhealthy: "✗", unknown: "?" };
  const known = new Set(Array.from(document.querySelectorAll("tr[data-name]"), (r) => r.dataset.name));

  function setBadge(el, status) {
    const badge = el.querySelector(".badge");
    if (!badge) return;
    badge.className = "badge status-" + status;
    badge.querySelector(".symbol").textContent = SYMBOL[status] || "?";
    badge.querySelector(".word").textContent = status;
  }

  function setVerdict(id, v) {
    const el = document.getElementById(id);
    if (!el) return;
    el.classList.toggle("pass", v.pass);
    el.classList.toggle("fail", !v.pass);
    el.querySelector(".value").firstChild.textContent = v.pass ? "✓ " : "✗ ";
    el.querySelector(".word").textContent = v.word;
  }

  function update(s) {
    let changedSet = false;
    for (const c of s.checks) {
      if (!known.has(c.name) && document.querySelector("table")) changedSet = true;
      for (const el of document.querySelectorAll("[data-name]")) {
        if (el.dataset.name !== c.name) continue;
        setBadge(el, c.status);
        if (el.tagName === "TR") {
          el.className = "check status-" + c.status;
          el.querySelector(".latency").textContent =
            c.latency_ms === undefined ? "" : c.latency_ms.toFixed(1) + " ms";
          const why = el.querySelector(".why");
          if (c.status === "healthy") why.textContent = "";
          else if (!s.authorized) why.textContent = "reason withheld";
          else why.textContent = (c.reason ? c.reason + ": " : "") + (c.message || "");
        }
      }
    }
    if (document.querySelector("table") && s.checks.length !== known.size) changedSet = true;
    setVerdict("verdict-live", s.live);
    setVerdict("verdict-ready", s.ready);
    setVerdict("verdict-started", s.started);
    const overall = document.getElementById("overall");
    if (overall) setBadge(overall, s.overall);
    document.getElementById("generated").textContent = s.generated_at;
    // Checks added or removed by a reload: render the page anew.
    if (changedSet) location.reload();
  }

  async function tick() {
    try {
      const r = await fetch("/status.json", { credentials: "same-origin", cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      update(await r.json());
      document.getElementById("offline").hidden = true;
    } catch (e) {
      document.getElementById("offline").hidden = false;
    }
    setTimeout(tick, 1000);
  }
  setTimeout(tick, 1000);
})();
