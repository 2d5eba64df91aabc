// Portail de demande : autocomplétion des communes et lignes d'agents supplémentaires.
// Fichier servi par le portail lui-même (la politique de sécurité interdit le code en ligne).
"use strict";

(function () {
  function communeAutocomplete() {
    var input = document.getElementById("commune");
    var list = document.getElementById("commune-suggestions");
    if (!input || !list) { return; }
    var timer = null;
    var active = -1;
    var lastQuery = "";

    function close() {
      list.hidden = true;
      list.textContent = "";
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function choose(item) {
      input.value = item.getAttribute("data-label");
      close();
    }

    function highlight(index) {
      var items = list.querySelectorAll("li");
      if (!items.length) { return; }
      active = (index + items.length) % items.length;
      items.forEach(function (li, i) { li.setAttribute("aria-selected", i === active ? "true" : "false"); });
      input.setAttribute("aria-activedescendant", items[active].id);
    }

    function show(communes) {
      list.textContent = "";
      if (!communes.length) { close(); return; }
      communes.forEach(function (c, i) {
        var li = document.createElement("li");
        li.id = "commune-option-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("data-label", c.label);
        li.setAttribute("data-insee", c.insee);
        li.textContent = c.name + " (" + (c.postal_codes.join(", ") || c.insee) + ") — dép. " + c.departement;
        li.addEventListener("mousedown", function (event) { event.preventDefault(); choose(li); });
        list.appendChild(li);
      });
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      active = -1;
    }

    function search() {
      var query = input.value.trim();
      if (query.length < 2) { close(); return; }
      if (query === lastQuery) { return; }
      lastQuery = query;
      fetch("/api/communes?q=" + encodeURIComponent(query), {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.json() : {communes: []}; })
        .then(function (data) { if (input.value.trim() === query) { show(data.communes || []); } })
        .catch(function () { close(); });
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(search, 150);
    });
    input.addEventListener("keydown", function (event) {
      if (list.hidden) { return; }
      if (event.key === "ArrowDown") { event.preventDefault(); highlight(active + 1); }
      else if (event.key === "ArrowUp") { event.preventDefault(); highlight(active - 1); }
      else if (event.key === "Enter" && active >= 0) {
        event.preventDefault();
        choose(list.querySelectorAll("li")[active]);
      } else if (event.key === "Escape") { close(); }
    });
    input.addEventListener("blur", function () { setTimeout(close, 100); });
  }

  function agentRows() {
    var button = document.getElementById("ajouter-agent");
    var rows = Array.prototype.slice.call(document.querySelectorAll(".agent[data-masquable]"));
    if (!button || !rows.length) { return; }
    rows.forEach(function (row) { row.hidden = true; });
    button.hidden = false;
    button.addEventListener("click", function () {
      var next = rows.shift();
      if (next) {
        next.hidden = false;
        next.querySelector("input").focus();
      }
      if (!rows.length) { button.hidden = true; }
    });
  }

  function focusErrors() {
    var summary = document.getElementById("resume-erreurs");
    if (summary) { summary.focus(); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    communeAutocomplete();
    agentRows();
    focusErrors();
  });
}());
