// The schedule form shows only the fields of the chosen mode.
(function () {
  var form = document.querySelector('.schedule-form');
  if (!form) return;
  function sync() {
    var mode = (form.querySelector('input[name=mode]:checked') || {}).value;
    form.querySelectorAll('[data-for]').forEach(function (label) {
      label.hidden = label.dataset.for.split(' ').indexOf(mode) < 0;
    });
  }
  form.addEventListener('change', sync);
  sync();
})();
