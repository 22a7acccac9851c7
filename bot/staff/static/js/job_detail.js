// Job opening page: the new-interests notice reloads; forms with data-confirm ask first.
document.querySelectorAll('[data-new-interests] a').forEach(function (link) {
  link.addEventListener('click', function (event) {  // same page: a hash change would not reload
    event.preventDefault();
    history.replaceState(null, '', link.getAttribute('href'));
    location.reload();
  });
});
document.querySelectorAll('form[data-confirm]').forEach(function (form) {
  form.addEventListener('submit', function (event) {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});
