/* parallux report: the Machines section (the data's "machines", "machine_facts" and "config", see
 * docs/reference.md).
 *
 * What the run recorded of the machines it ran on (SPEC 17): the noise checks' findings first (a number
 * measured with turbo on or a powersave governor is one to doubt), a table with a column per machine and a
 * row per fact (written by parallux as `show` writes them), each probe's output, and the config as run (its
 * SHA-256 and git commit). A run that recorded none of it has no section. Registers itself for report.js.
 */
(function () {
  "use strict";

  function draw(data, hook, tools) {
    var machines = data.machines || [], config = data.config || {}, facts = data.machine_facts || [];
    var state = hook.machines = { machines: machines.length, facts: facts.length, probes: 0, noise: 0 };
    if (!machines.length && !config.sha256 && !config.git) { return; }
    var $ = function (id) { return document.getElementById(id); };
    $("machines-section").hidden = false;
    machines.forEach(function (machine) {
      (machine.noise || []).forEach(function (message) {
        $("machines-noise").appendChild(tools.el("li", null, message));
        state.noise++;
      });
    });
    if (machines.length) { $("machines-box").appendChild(factsTable(machines, facts, tools)); }
    machines.forEach(function (machine) {
      Object.keys(machine.probes || {}).forEach(function (name) {
        $("machines-probes").appendChild(probe(machine.label, name, machine.probes[name], tools));
        state.probes++;
      });
    });
    $("machines-config").textContent = configText(config);
  }

  function factsTable(machines, facts, tools) {
    var table = tools.el("table"), head = tools.el("tr");
    head.appendChild(tools.el("th", null, "machine"));
    machines.forEach(function (machine) { head.appendChild(tools.el("th", null, machine.label)); });
    table.appendChild(head);
    facts.forEach(function (fact) {
      var tr = tools.el("tr");
      tr.appendChild(tools.el("th", { scope: "row" }, fact[0]));
      fact[1].forEach(function (text) { tr.appendChild(tools.el("td", { "class": "mono" }, text)); });
      table.appendChild(tr);
    });
    return table;
  }

  function probe(label, name, found, tools) {
    var output = found.output || "";
    var first = found.error !== null && found.error !== undefined ? "could not run: " + found.error :
      (found.returncode ? "exit " + found.returncode + ": " : "") + (output.split("\n")[0] || "(no output)");
    var details = tools.el("details");
    details.appendChild(tools.el("summary", null, "probe " + name + " on " + label + ": " + first));
    details.appendChild(tools.el("pre", null, "$ " + (found.command || "?") + "\n" + output +
      (found.truncated ? "\n(the first 4 KiB of the output)" : "")));
    return details;
  }

  function configText(config) {
    var text = "config " + (config.path || "?") + " · sha256 " + (config.sha256 || "unknown");
    var git = config.git;
    if (!git) { return text + " · not in a git work tree"; }
    return text + " · git " + (git.commit || "(no commit yet)") +
      (git.dirty === true ? " (dirty)" : git.dirty === false ? " (clean)" : "") + (git.root ? " in " + git.root : "");
  }

  (window.__parallux_sections = window.__parallux_sections || []).push(draw);
})();
