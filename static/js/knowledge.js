// Live status on the Knowledge page: poll while a source is being ingested.
(function () {
  const table = document.querySelector("table.sources[data-busy]");
  if (!table) return;
  // Only this page's sources: the list can be long, the poll stays one page's worth.
  const ids = [...table.querySelectorAll("tr[data-source-id]")].map((row) => row.dataset.sourceId);
  const url = `${table.dataset.statusUrl}?ids=${ids.join(",")}`;
  async function refresh() {
    let data;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (!response.ok) return setTimeout(refresh, 5000);
      data = await response.json();
    } catch (e) {
      return setTimeout(refresh, 5000);
    }
    for (const item of data.sources) {
      const row = table.querySelector(`tr[data-source-id="${item.id}"]`);
      if (!row) continue;
      const label = row.querySelector('[data-field="label"]');
      label.textContent = item.label;
      label.className = `badge badge-${item.status}`;
      const bar = row.querySelector('[data-field="progress"]');
      bar.value = item.progress;
      bar.textContent = `${item.progress}%`;
      bar.hidden = item.status === "ready" || item.status === "failed";
      row.querySelector('[data-field="chunks"]').textContent = item.chunks;
      row.querySelector('[data-field="error"]').textContent = item.error;
    }
    if (data.busy) setTimeout(refresh, 1500);
  }
  setTimeout(refresh, 1000);
})();
