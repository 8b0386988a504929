// The colour theme: Light, Dark or System (the default, which follows the operating system).
// Loaded without `defer` in <head>, so data-theme is on <html> before the first paint (no flash of the
// other theme); the control in the top bar is wired once the page is parsed.
(function () {
  "use strict";
  var KEY = "aicode-theme";
  var root = document.documentElement;

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "light" || value === "dark" ? value : "system";
    } catch (err) {
      return "system";  // storage refused (a private window, a policy): the system's theme
    }
  }

  function apply(choice) {
    if (choice === "light" || choice === "dark") root.setAttribute("data-theme", choice);
    else root.removeAttribute("data-theme");
  }

  function remember(choice) {
    try {
      if (choice === "system") window.localStorage.removeItem(KEY);
      else window.localStorage.setItem(KEY, choice);
    } catch (err) { /* not remembered: this page still shows it */ }
  }

  apply(stored());

  document.addEventListener("DOMContentLoaded", function () {
    var control = document.querySelector("[data-theme-choice]");
    if (!control) return;
    control.value = stored();
    control.addEventListener("change", function () {
      remember(control.value);
      apply(control.value);
    });
    // Another tab changed it: follow.
    window.addEventListener("storage", function (event) {
      if (event.key !== KEY) return;
      control.value = stored();
      apply(control.value);
    });
    control.closest("[data-theme-control]").hidden = false;
  });
})();
