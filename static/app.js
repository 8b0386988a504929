/* Shared page behaviour: API calls with the CSRF token, confirmations, copy buttons, keyboard
 * shortcuts, the task form's agent picker, and watching a cloning workspace until it is ready. No
 * inline scripts anywhere: the Content-Security-Policy forbids them, so pages opt in through data-
 * attributes.
 */
(function () {
  "use strict";

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  // The API's error answers are {status_code, detail}; reject with the detail as the message.
  function check(response) {
    if (response.status === 401) {
      window.location.assign("/login?next=" + encodeURIComponent(window.location.pathname));
    }
    var isJson = (response.headers.get("content-type") || "").indexOf("application/json") === 0;
    var body = isJson ? response.json() : response.text();
    return body.then(function (data) {
      if (response.ok) return data;
      var detail = data && data.detail ? data.detail : response.status + " " + response.statusText;
      throw new Error(detail);
    });
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(check);
  }

  // A state-changing call: the session cookie authenticates it, the header proves it came from this page.
  function send(method, url, body) {
    var headers = { Accept: "application/json", "X-CSRFToken": csrfToken() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(url, {
      method: method, credentials: "same-origin", headers: headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    }).then(check);
  }

  window.aicode = { csrfToken: csrfToken, getJSON: getJSON, send: send };

  function confirmForms() {
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        if (!window.confirm(form.dataset.confirm)) event.preventDefault();
      });
    });
  }

  function copyButtons() {
    document.querySelectorAll("[data-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var input = document.querySelector(button.dataset.copy);
        input.select();
        var done = function () { button.textContent = "Copied"; };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(input.value).then(done);
        } else if (document.execCommand("copy")) {
          done();
        }
      });
    });
  }

  function keyboard() {
    document.querySelectorAll("textarea[data-ctrl-enter]").forEach(function (area) {
      area.addEventListener("keydown", function (event) {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && area.form) {
          event.preventDefault();
          // A form whose submit button is disabled (no key yet, a turn running) is not sent by a shortcut either.
          var submit = area.form.querySelector("button[type=submit]");
          if (submit && submit.disabled) return;
          area.form.requestSubmit();
        }
      });
    });
    document.querySelectorAll("form[data-submit-once]").forEach(function (form) {
      form.addEventListener("submit", function () {
        form.querySelectorAll("button[type=submit]").forEach(function (b) { b.disabled = true; });
      });
    });
  }

  // The task form's model field follows the chosen agent: that agent's models as suggestions, its
  // default as the placeholder, and a model picked for the agent left behind is cleared.
  function agentPicker() {
    document.querySelectorAll("select[data-agent-picker]").forEach(function (select) {
      var model = document.getElementById(select.dataset.agentPicker);
      if (!model) return;
      var suggests = function (list, value) {
        return !!list && Array.prototype.some.call(list.options, function (o) { return o.value === value; });
      };
      select.addEventListener("change", function () {
        var option = select.selectedOptions[0];
        if (!option) return;
        var next = document.getElementById("models-" + option.value);
        if (model.value && suggests(model.list, model.value) && !suggests(next, model.value)) model.value = "";
        model.setAttribute("list", "models-" + option.value);
        model.placeholder = option.dataset.defaultModel || "the CLI\u2019s default";
      });
    });
  }

  // A task form is not sent while the chosen agent cannot run: no model key for its provider (the user's own
  // or the workspace's team key) or not in the image. It says why and links to Settings instead.
  function keyCheck() {
    document.querySelectorAll("form[data-key-check]").forEach(function (form) {
      var agent = form.querySelector("[data-key-agent]");
      var workspace = form.querySelector("[data-key-workspace]");
      var notice = form.querySelector("[data-no-key]");
      var text = form.querySelector("[data-no-key-text]");
      if (!agent || !notice || !text) return;
      var update = function () {
        var option = agent.selectedOptions[0];
        var place = workspace ? workspace.selectedOptions[0] : null;
        var problem = option ? option.dataset.blocked || "" : "";
        if (!problem && option && place && option.dataset.provider) {
          var providers = (place.dataset.providers || "").split(" ");
          if (providers.indexOf(option.dataset.provider) < 0) {
            problem = option.textContent.trim() + ": you have no " + option.dataset.providerLabel + " key for " +
              place.textContent.trim() + " \u2014 add yours, or a workspace owner adds a team key.";
          }
        }
        text.textContent = problem;
        notice.hidden = !problem;
        form.querySelectorAll("[data-needs-key]").forEach(function (button) { button.disabled = !!problem; });
      };
      agent.addEventListener("change", update);
      if (workspace) workspace.addEventListener("change", update);
      update();
    });
  }

  // The Admin page follows a running image build: its new output lines as they come, the page again once it ends.
  function followImageBuild() {
    var section = document.querySelector('[data-image-status="running"]');
    if (!section) return;
    var log = section.querySelector("[data-image-log]");
    var seen = log ? parseInt(log.dataset.lineCount || "0", 10) : 0;
    var poll = function () {
      getJSON("/api/admin/image?after=" + seen).then(function (image) {
        var build = image.build;
        if (!build || build.state !== "running") {
          window.location.reload();
          return;
        }
        if (log && build.lines.length) {
          var atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
          log.appendChild(document.createTextNode("\n" + build.lines.join("\n")));
          if (atBottom) log.scrollTop = log.scrollHeight;
        }
        seen = build.line_count;
        setTimeout(poll, 1000);
      }).catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 1000);
  }

  // A workspace shown as cloning reloads the page once the clone has finished (ready or error).
  function watchCloning() {
    var cloning = document.querySelectorAll('[data-workspace-status="cloning"]');
    cloning.forEach(function (node) {
      var poll = function () {
        getJSON("/api/workspaces/" + node.dataset.workspaceId).then(function (ws) {
          if (ws.status !== "cloning") window.location.reload();
          else setTimeout(poll, 1000);
        }).catch(function () { setTimeout(poll, 5000); });
      };
      setTimeout(poll, 1000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    confirmForms();
    copyButtons();
    keyboard();
    agentPicker();
    keyCheck();
    followImageBuild();
    watchCloning();
  });
})();
