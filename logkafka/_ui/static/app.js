"use strict";
(async () => {
  const rows = document.getElementById("rows");
  const r = await fetch("/api/records" + location.search);
  const data = await r.json();
  for (const e of data.records) {
    const div = document.createElement("div");
    div.className = "row";
    div.textContent = `${e.time} ${e.level} ${e.stream} ${e.service} ${e.message}`;
    rows.append(div);
  }
})();
