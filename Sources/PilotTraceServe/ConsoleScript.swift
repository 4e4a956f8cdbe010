/// `/console.js`: the only script, and everything works without it but live updates. On the sessions page it opens
/// the Server-Sent Events feed (`data-events`) and inserts or replaces the rows it sends (rendered and escaped by the
/// server) and the counts; on every page it marks `<html data-overflow="yes">` when the page is wider than the
/// window or a scrolling box (a wide table, the diagram) is wider than its box (the layout tests read it at 1400 and
/// 900 px).
enum ConsoleScript {
    static let text = """
        "use strict";
        (function () {
          var root = document.documentElement;
          function measure() {
            var wide = root.scrollWidth > window.innerWidth + 1;
            document.querySelectorAll(".scroll, .seq").forEach(function (box) { if (box.scrollWidth > box.clientWidth + 1) wide = true; });
            root.dataset.overflow = wide ? "yes" : "no";
          }
          measure();
          window.addEventListener("resize", measure);
          var table = document.getElementById("sessions");
          if (!table || !window.EventSource) return;
          var body = table.tBodies[0];
          var feed = new EventSource(table.dataset.events);
          feed.addEventListener("session", function (event) {
            var data = JSON.parse(event.data);
            var holder = document.createElement("tbody");
            holder.innerHTML = data.html;
            var row = holder.firstElementChild;
            if (!row) return;
            row.classList.add("fresh");
            var old = document.getElementById("session-" + data.id);
            if (old) old.replaceWith(row);
            else if (table.dataset.insert === "yes") body.insertBefore(row, body.firstChild);
            measure();
          });
          feed.addEventListener("counts", function (event) {
            var counts = document.getElementById("counts");
            if (counts) counts.innerHTML = JSON.parse(event.data).html;
          });
        })();

        """
}
