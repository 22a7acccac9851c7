// Live delivery progress of broadcasts (jobs_progress.html): polls and updates in place.
document.querySelectorAll('.progress-box').forEach(function (box) {
  var FAST = 1500, SLOW = 5000;
  function show(el, p) {
    Object.keys(p.counts).forEach(function (key) {
      var cell = el.querySelector('[data-count="' + key + '"]');
      if (cell) { cell.textContent = p.counts[key]; cell.classList.toggle('zero', !p.counts[key]); }
      var seg = el.querySelector('.seg.' + key);
      if (seg) seg.style.width = (p.total ? 100 * p.counts[key] / p.total : 0) + '%';
    });
    var total = el.querySelector('[data-count="total"]');
    if (total) total.textContent = p.total;
    var busy = p.counts.queued + p.counts.sent > 0;
    el.dataset.state = busy ? 'sending' : 'done';
    el.querySelector('[data-state-label]').textContent = busy ? box.dataset.textSending : box.dataset.textDone;
    var list = el.querySelector('[data-failures]');
    list.replaceChildren.apply(list, p.failures.map(function (f) {
      var li = document.createElement('li');
      li.textContent = [f.name, f.phone + ':', f.code, f.error].join(' ');
      return li;
    }));
    list.hidden = p.failures.length === 0;
    return busy;
  }
  function stamp(text) {
    box.querySelectorAll('[data-updated]').forEach(function (el) { el.textContent = text; });
  }
  box.querySelectorAll('.seg[data-width]').forEach(function (seg) {
    seg.style.width = seg.dataset.width + '%';  // set here: the CSP allows no style attributes
  });
  function poll() {
    var busy = true;
    fetch(box.dataset.progressUrl, {credentials: 'same-origin', cache: 'no-store',
                                    headers: {'Accept': 'application/json'}})
      .then(function (response) {
        if (!response.ok) throw new Error(response.status);
        return response.json();
      })
      .then(function (data) {
        busy = false;
        Object.keys(data.broadcasts).forEach(function (id) {
          var el = box.querySelector('[data-broadcast="' + id + '"]');
          if (el && show(el, data.broadcasts[id])) busy = true;
        });
        var shown = box.dataset.interestsShown;
        var notice = document.querySelector('[data-new-interests]');
        if (notice && shown !== undefined && data.interests > Number(shown)) notice.hidden = false;
        stamp('· ' + box.dataset.textUpdated + ' ' + data.updated);  // the server's clock
      })
      .catch(function () { stamp('· ' + box.dataset.textOffline); })
      .then(function () { setTimeout(poll, busy && !document.hidden ? FAST : SLOW); });
  }
  setTimeout(poll, FAST);
});
