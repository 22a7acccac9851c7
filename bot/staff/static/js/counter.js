// Live character count under a textarea[data-counter] (announcements).
document.querySelectorAll('textarea[data-counter]').forEach(function (area) {
  var out = area.parentElement.querySelector('[data-count]');
  area.addEventListener('input', function () { out.textContent = area.value.length; });
});
