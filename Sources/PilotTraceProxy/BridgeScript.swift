import PilotTraceFlow

/// The script the proxy injects into HTML pages: it wraps `window.djiBridge` (protocol reference §3) and reports
/// every call, its arguments and its result to the proxy's reserved path, with secrets masked at the source.
///
/// The page behaves as before: each wrapped function is called on the original bridge with the same arguments,
/// its return value is returned unchanged and its exception rethrown; reports go out afterwards (batched per task
/// with `navigator.sendBeacon`, else an asynchronous XHR) and their failures are swallowed. Callbacks named in the
/// calls (`connectCallback`, `wsConnectCallback`, …) are wrapped the same way when native code calls them.
///
/// `window.djiBridge` becomes an accessor that hands out a wrapper (a `Proxy` over the bridge); assigning it wraps the
/// new object. What a page can tell apart: `window.djiBridge` is no longer the native object itself (identity), and
/// `"djiBridge" in window` is true even where there is no bridge (a desktop browser). A Content-Security-Policy
/// without `'unsafe-inline'` blocks the script: the page then runs unwrapped and unreported.
public enum BridgeScript {
    /// Where reports go: answered by the proxy itself (204), never forwarded, recorded like any exchange.
    public static var reportPath: String { BridgeReport.path }

    /// The script, without the `<script>` tags.
    public static let source: String = #"""
        (function () {
          "use strict";
          if (window.__pilottraceBridge) return;
          window.__pilottraceBridge = true;
          var PATH = "\#(BridgeReport.path)";
          var SECRET_ARGS = { platformVerifyLicense: [1, 2], apiSetToken: [0], thingConnect: [1], wsConnect: [1], platformSetLogEncryptKey: [0] };
          var SECRET_RESULTS = { apiGetToken: true };
          var SECRET_KEYS = { token: 1, password: 1, appKey: 1, app_key: 1, license: 1, secret: 1, access_token: 1, mqtt_password: 1, device_secret: 1 };
          var queue = [], timer = null, hooked = {};
          function mask(v) { return v === undefined || v === null ? v : "<masked " + String(v).length + " chars>"; }
          function maskObject(o) {
            for (var k in o) {
              if (!Object.prototype.hasOwnProperty.call(o, k)) continue;
              if (SECRET_KEYS[k]) o[k] = mask(o[k]);
              else if (o[k] && typeof o[k] === "object") maskObject(o[k]);
            }
            return o;
          }
          function maskText(s) {
            if (typeof s !== "string" || s.charAt(0) !== "{") return s;
            try { var o = JSON.parse(s); if (o && typeof o === "object") return JSON.stringify(maskObject(o)); } catch (e) {}
            return s;
          }
          function plain(v) {
            if (v === undefined) return null;
            if (typeof v === "function") return "[function]";
            if (typeof v === "string") return v.length > 4096 ? v.slice(0, 4096) + "…" : v;
            try { return JSON.parse(JSON.stringify(v)); } catch (e) { return String(v); }
          }
          function argsOf(fn, args) {
            var out = [], secret = SECRET_ARGS[fn] || [];
            for (var i = 0; i < args.length; i++) out.push(secret.indexOf(i) >= 0 ? mask(args[i]) : maskText(plain(args[i])));
            return out;
          }
          function resultOf(fn, r) {
            var v = plain(r);
            if (SECRET_RESULTS[fn]) {
              try { var o = JSON.parse(v); if (o && typeof o === "object" && "data" in o) { o.data = mask(o.data); return JSON.stringify(o); } } catch (e) {}
              return mask(v);
            }
            return maskText(v);
          }
          function flush() {
            timer = null;
            if (!queue.length) return;
            var body = JSON.stringify({ page: location.pathname, sent_at: Date.now(), calls: queue });
            queue = [];
            try { if (navigator.sendBeacon && navigator.sendBeacon(PATH, body)) return; } catch (e) {}
            try { var x = new XMLHttpRequest(); x.open("POST", PATH, true); x.setRequestHeader("Content-Type", "application/json"); x.send(body); } catch (e) {}
          }
          function report(entry) {
            entry.at = Date.now();
            queue.push(entry);
            if (!timer) timer = setTimeout(flush, 0);
          }
          try { window.addEventListener("pagehide", flush); } catch (e) {}
          function hook(name) {
            if (typeof name !== "string" || !/^[A-Za-z_$][\w$]*$/.test(name) || hooked[name]) return;
            hooked[name] = true;
            var current = window[name];
            var wrapper = function () {
              report({ callback: name, args: argsOf("", arguments) });
              return current.apply(this, arguments);
            };
            try {
              Object.defineProperty(window, name, {
                configurable: true, enumerable: true,
                get: function () { return typeof current === "function" ? wrapper : current; },
                set: function (v) { current = v; }
              });
            } catch (e) {}
          }
          function hookFrom(fn, args) {
            for (var i = 0; i < args.length; i++) {
              var a = args[i];
              if (typeof a === "string" && a.charAt(0) === "{") {
                try { var o = JSON.parse(a); for (var k in o) if (/callback$/i.test(k)) hook(o[k]); } catch (e) {}
              } else if (typeof a === "string" && /callback/i.test(fn) || (fn === "thingConnect" && i === 2) || (fn === "wsConnect" && i === 2)) {
                hook(a);
              }
            }
          }
          function wrapFunction(bridge, fn, f) {
            return function () {
              var args = arguments, r;
              hookFrom(fn, args);
              try { r = f.apply(bridge, args); } catch (e) {
                report({ fn: fn, args: argsOf(fn, args), error: String(e && e.message || e) });
                throw e;
              }
              report({ fn: fn, args: argsOf(fn, args), result: resultOf(fn, r) });
              return r;
            };
          }
          function wrapBridge(b) {
            if (!b || (typeof b !== "object" && typeof b !== "function")) return b;
            var cache = {};
            if (typeof Proxy === "function") {
              return new Proxy(b, {
                get: function (t, k) {
                  var v = t[k];
                  if (typeof v !== "function" || typeof k !== "string") return v;
                  if (!cache[k] || cache[k].f !== v) cache[k] = { f: v, w: wrapFunction(t, k, v) };
                  return cache[k].w;
                }
              });
            }
            var w = {};
            for (var k in b) w[k] = typeof b[k] === "function" ? wrapFunction(b, k, b[k]) : b[k];
            return w;
          }
          var original = window.djiBridge, wrapped = wrapBridge(original);
          try {
            Object.defineProperty(window, "djiBridge", {
              configurable: true, enumerable: true,
              get: function () { return wrapped; },
              set: function (v) { original = v; wrapped = wrapBridge(v); }
            });
          } catch (e) {}
        })();
        """#

    /// The `<script>` element that is injected.
    public static var element: String { "<script data-pilottrace=\"bridge\">\n\(source)\n</script>" }

    /// Inserts the script as early as possible without moving a `<meta charset>` out of the first bytes: after the
    /// `<head>` tag's charset declaration when there is one, else right after `<head>`, else after `<html>` or the
    /// doctype, else at the very start. Returns nil when the page already carries it.
    public static func inject(into html: [UInt8]) -> [UInt8]? {
        let marker = Array("data-pilottrace=\"bridge\"".utf8)
        if firstIndex(of: marker, in: html[...], caseInsensitive: false) != nil { return nil }
        let insertion = Array(element.utf8)
        let at: Int
        if let head = tagEnd("<head", in: html) {
            let limit = min(html.count, head + 1024)
            if let meta = firstIndex(of: Array("<meta".utf8), in: html[head..<limit], caseInsensitive: true),
                let close = html[meta..<limit].firstIndex(of: UInt8(ascii: ">")),
                firstIndex(of: Array("charset".utf8), in: html[meta..<close], caseInsensitive: true) != nil
            {
                at = close + 1
            } else {
                at = head
            }
        } else if let h = tagEnd("<html", in: html) {
            at = h
        } else if let d = tagEnd("<!doctype", in: html) {
            at = d
        } else {
            at = 0
        }
        return Array(html[..<at]) + insertion + Array(html[at...])
    }

    /// The index just after the `>` closing the first `tag` (followed by `>`, space or `/`).
    static func tagEnd(_ tag: String, in html: [UInt8]) -> Int? {
        let t = Array(tag.utf8)
        var from = 0
        while let i = firstIndex(of: t, in: html[from...], caseInsensitive: true) {
            let next = i + t.count
            if next < html.count, [UInt8(ascii: ">"), 0x20, 0x09, 0x0A, 0x0D, UInt8(ascii: "/")].contains(html[next]),
                let close = html[next...].firstIndex(of: UInt8(ascii: ">"))
            {
                return close + 1
            }
            from = i + 1
        }
        return nil
    }

    static func firstIndex(of needle: [UInt8], in hay: ArraySlice<UInt8>, caseInsensitive: Bool) -> Int? {
        guard !needle.isEmpty, hay.count >= needle.count else { return nil }
        func lower(_ b: UInt8) -> UInt8 { caseInsensitive && b >= 65 && b <= 90 ? b + 32 : b }
        let n = needle.map(lower)
        var i = hay.startIndex
        while i <= hay.endIndex - n.count {
            var j = 0
            while j < n.count, lower(hay[i + j]) == n[j] { j += 1 }
            if j == n.count { return i }
            i += 1
        }
        return nil
    }
}
