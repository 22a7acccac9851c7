// A roster import being written (roster_progress.html): polls its progress and shows the rows
// done in place; once it is no longer being written, the page reloads to show the summary (or
// what stopped it).
document.querySelectorAll('.import-progress[data-state="applying"]').forEach(function (box) {
  var EVERY = 1000, SLOW = 5000;
  var bar = box.querySelector('progress');
  function poll() {
    fetch(box.dataset.progressUrl, {credentials: 'same-origin', cache: 'no-store',
                                    headers: {'Accept': 'application/json'}})
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      })
      .then(function (p) {
        box.querySelector('[data-done]').textContent = p.done;
        box.querySelector('[data-total]').textContent = p.total;
        bar.max = p.total;
        bar.value = p.done;
        if (p.state !== 'applying') {
          window.location.reload();
          return;
        }
        setTimeout(poll, EVERY);
      })
      .catch(function () { setTimeout(poll, SLOW); });
  }
  setTimeout(poll, EVERY);
});
