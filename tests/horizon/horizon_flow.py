#!/usr/bin/python3
"""Drives Horizon with magnum-ui (scripts/dashboard) against Magnetar in headless Chromium, as a person would.

admin logs in through the login form and creates a public cluster template with magnum-ui's form; demo logs in,
creates a key pair, opens both Container Infra panels, creates a cluster with the form, watches it reach
CREATE_COMPLETE in the table, opens its detail page, resizes it with the Resize action to 2 workers and back to 1
(choosing the older worker, then checking that one is gone), deletes it, and opens its other panels; admin opens
the admin panels, checks Identity > Users offers no editing, renames the template with Update and deletes it.

Every step fails on a Horizon error (a red toast or alert, an error page), on a browser request to Horizon that
answers 4xx/5xx, and on a 4xx/5xx in Magnetar's request log while it ran, except the allowances in ALLOWED_MAGNETAR
and ALLOWED_BROWSER (each with its reason). Prints one line per check, then "N passed, M failed"; exit 1 on failure.
Screenshots of every step go to --out.
"""
import argparse
import json
import os
import re
import sys
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

# Magnetar answers that are expected during the flow: (method, path regex, status, reason).
ALLOWED_MAGNETAR = [
    ("POST", r"^/identity/v3/auth/tokens$", 401,
     "openstack_auth first asks for a token scoped to the user's domain (Default); the user has no role on the "
     "domain, and Keystone answers 401 (Horizon logs 'Attempted scope to domain Default failed')"),
]
# Browser requests to Horizon that may fail: (url regex, status, reason).
ALLOWED_BROWSER = [
    (r"/favicon\.ico$", 404, "Chromium asks for /favicon.ico; Horizon links its icon from /static/"),
]
# Console messages that are not Magnetar's problem: (regex, reason).
ALLOWED_CONSOLE = [
    (r"angular\.lowercase is not a function",
     "Debian's angular 1.8 has no angular.lowercase, which its older angular-gettext calls"),
    (r"favicon\.ico", "see ALLOWED_BROWSER"),
    (r"Possibly unhandled rejection: undefined",
     "Horizon's 'Loading' spinner (horizon/static/framework/widgets/modal-wait-spinner) is closed with dismiss() and "
     "nothing handles that modal's result; Debian's angular 1.8 reports it (the angular Horizon targets did not). "
     "magnum-ui opens the spinner while the Create Cluster and Resize dialogs load"),
]
REQUEST_LINE = re.compile(r"Request finished HTTP/[\d.]+ (\w+) (\S+) - (\d{3}) ")


class Failure(Exception):
    pass


class Flow:
    def __init__(self, args):
        self.a = args
        self.url = args.url.rstrip("/")
        self.passed = 0
        self.failed = 0
        self.step = 0
        self.log_offset = 0
        self.logins = 0
        self.allowed_401s_used = 0
        os.makedirs(args.out, exist_ok=True)
        o = webdriver.ChromeOptions()
        o.binary_location = args.chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--window-size=1400,1000", "--no-first-run", "--disable-extensions", "--lang=en-US"):
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.d = webdriver.Chrome(service=Service(args.chromedriver), options=o)
        self.d.set_page_load_timeout(180)
        self.d.implicitly_wait(0)
        self.skip_magnetar_log()

    # ---- reporting -------------------------------------------------------------------------------------------
    def check(self, name, fn):
        self.step += 1
        t0 = time.time()
        error = None
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, and the flow goes on where it can
            error = e
        # Errors shown, failed browser requests and Magnetar's 4xx/5xx while the step ran fail it too.
        try:
            problems = self.problems()
        except WebDriverException as e:
            problems = [f"could not read the page: {e.msg}"]
        if error is None and not problems:
            self.passed += 1
            print(f"ok    {name}  ({time.time() - t0:.1f}s)", flush=True)
            self.shot(name)
            return True
        self.failed += 1
        msg = (str(error).strip().splitlines() or [type(error).__name__])[0] if error is not None else "errors during the step"
        print(f"FAIL  {name}: {msg[:400]}  ({time.time() - t0:.1f}s)", flush=True)
        for p in problems:
            print(f"      - {p[:400]}", flush=True)
        if error is not None and not isinstance(error, Failure):
            traceback.print_exception(type(error), error, error.__traceback__, limit=3, file=sys.stdout)
        self.shot(name, failed=True)
        return False

    def shot(self, name, failed=False):
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]
        path = os.path.join(self.a.out, f"{self.step:02d}-{slug}{'-FAILED' if failed else ''}.png")
        try:
            self.d.save_screenshot(path)
        except WebDriverException:
            pass

    def problems(self):
        """Horizon errors on the page, and failed requests in the browser and in Magnetar's log since the last step."""
        out = []
        out += [f"Horizon error shown: {t}" for t in self.page_errors()]
        out += self.browser_problems()
        out += self.magnetar_problems()
        return out

    def page_errors(self):
        texts = []
        for e in self.d.find_elements(By.CSS_SELECTOR, ".alert-danger, .alert-error"):
            try:
                if e.is_displayed() and e.text.strip():
                    texts.append(" ".join(e.text.split()))
            except WebDriverException:
                pass
        title = self.d.title or ""
        body = self.d.find_elements(By.TAG_NAME, "h1")
        h1 = body[0].text if body else ""
        if re.search(r"Something went wrong|Server error|Bad Request|Page Not Found|Forbidden|Server Error", title + " " + h1):
            texts.append(f"error page: {title} {h1}".strip())
        return texts

    def drain_browser_logs(self):
        self.pending_browser = getattr(self, "pending_browser", [])
        try:
            for kind in ("browser", "performance"):
                for entry in self.d.get_log(kind):
                    self.pending_browser.append((kind, entry))
        except WebDriverException:
            pass

    def browser_problems(self):
        self.drain_browser_logs()
        out = []
        for kind, entry in self.pending_browser:
            if kind == "browser":
                if entry.get("level") != "SEVERE":
                    continue
                msg = entry.get("message", "")
                if "Failed to load resource" in msg:
                    continue  # the performance log below has the status and URL
                if any(re.search(rx, msg) for rx, _ in ALLOWED_CONSOLE):
                    continue
                out.append(f"browser console: {msg[:300]}")
            else:
                try:
                    m = json.loads(entry["message"])["message"]
                except (KeyError, ValueError):
                    continue
                if m.get("method") != "Network.responseReceived":
                    continue
                r = m["params"]["response"]
                status, url = int(r.get("status", 0)), r.get("url", "")
                if status < 400:
                    continue
                if any(re.search(rx, url) and status == st for rx, st, _ in ALLOWED_BROWSER):
                    continue
                out.append(f"browser got {status} for {url}")
        self.pending_browser = []
        return out

    def skip_magnetar_log(self):
        if self.a.magnetar_log and os.path.exists(self.a.magnetar_log):
            self.log_offset = os.path.getsize(self.a.magnetar_log)

    def magnetar_problems(self):
        if not self.a.magnetar_log:
            return []
        time.sleep(0.3)  # let the server flush its log
        with open(self.a.magnetar_log, "rb") as f:
            f.seek(self.log_offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        self.log_offset += cut
        out = []
        for line in data[:cut].decode("utf-8", "replace").splitlines():
            m = REQUEST_LINE.search(line)
            if not m:
                continue
            method, url, status = m.group(1), m.group(2), int(m.group(3))
            if status < 400:
                continue
            path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
            allowed = [a for a in ALLOWED_MAGNETAR if a[0] == method and re.search(a[1], path) and a[2] == status]
            # One domain-scope 401 per login, not more.
            if allowed and self.allowed_401s_used < self.logins:
                self.allowed_401s_used += 1
                continue
            out.append(f"Magnetar answered {status} to {method} {path}")
        return out

    # ---- page helpers ----------------------------------------------------------------------------------------
    def get(self, path):
        self.d.get(self.url + path)
        self.wait_angular()

    def wait(self, what, fn, timeout=30, interval=0.5):
        end = time.time() + timeout
        last = None
        while time.time() < end:
            try:
                v = fn()
                if v:
                    return v
            except WebDriverException as e:
                last = e
            time.sleep(interval)
        raise Failure(f"timed out after {timeout}s waiting for {what}" + (f" ({last.msg})" if last else ""))

    def wait_angular(self, timeout=60):
        """Until the document is loaded and Angular has no pending HTTP requests."""
        js = ("if (document.readyState !== 'complete') return false;"
              "if (!window.angular) return true;"
              "var el = document.querySelector('[ng-app]') || document.body;"
              "try { var inj = angular.element(el).injector(); if (!inj) return true;"
              " return inj.get('$http').pendingRequests.length === 0; } catch (e) { return true; }")
        self.wait("the page to settle", lambda: self.d.execute_script(js), timeout=timeout, interval=0.3)

    def visible(self, css, root=None):
        return [e for e in (root or self.d).find_elements(By.CSS_SELECTOR, css) if e.is_displayed()]

    def button(self, text, root=None, timeout=20):
        def find():
            for b in self.visible("button, a.btn, a[role=button]", root):
                if " ".join(b.text.split()) == text and b.is_enabled() and not b.get_attribute("disabled"):
                    return b
            return None
        return self.wait(f"button '{text}'", find, timeout=timeout)

    def click(self, el):
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)
        try:
            el.click()
        except WebDriverException:
            self.d.execute_script("arguments[0].click();", el)

    def modal(self, timeout=20):
        m = self.wait("a dialog", lambda: (self.visible(".modal-dialog") or [None])[-1], timeout=timeout)
        self.wait_angular()
        return (self.visible(".modal-dialog") or [m])[-1]

    def field(self, key, root=None, timeout=15):
        css = f"[ng-model=\"model['{key}']\"], [name='{key}']"
        return self.wait(f"form field '{key}'", lambda: (self.visible(css, root) or [None])[0], timeout=timeout)

    def fill(self, key, value, root=None):
        """Sets a form field; tries again when Angular re-renders the form underneath."""
        for attempt in range(5):
            try:
                return self._fill(key, value, root if attempt == 0 else self.modal())
            except StaleElementReferenceException:
                time.sleep(0.5)
        return self._fill(key, value, self.modal())

    def _fill(self, key, value, root=None):
        el = self.field(key, root)
        if el.tag_name == "select":
            sel = Select(el)
            self.wait(f"options of '{key}'", lambda: [o for o in sel.options if o.text.strip()], timeout=20)
            if value is None:
                choices = [o for o in sel.options if o.text.strip() and o.get_attribute("value") not in ("", "?")
                           and not o.get_attribute("disabled") and not o.text.startswith("Choose")]
                if not choices:
                    raise Failure(f"'{key}' offers nothing to choose")
                sel.select_by_visible_text(choices[0].text)
                return choices[0].text
            texts = [o.text for o in sel.options]
            match = next((t for t in texts if t == value), None) or next((t for t in texts if value in t), None)
            if match is None:
                raise Failure(f"'{key}' has no option '{value}' (options: {texts})")
            sel.select_by_visible_text(match)
            return match
        if el.get_attribute("type") == "checkbox":
            if el.is_selected() != bool(value):
                self.click(el)
            return value
        if el.get_attribute("readonly") or el.get_attribute("disabled") or not el.is_enabled():
            return el.get_attribute("value")  # e.g. master_count of a template with one master
        el.clear()
        el.send_keys(str(value))
        return value

    def checkbox(self, key, root=None):
        """A schema-form checkbox (its input is hidden by the theme): set it through its label."""
        css = f"input[type=checkbox][ng-model=\"model['{key}']\"]"
        el = self.wait(f"checkbox '{key}'", lambda: ((root or self.d).find_elements(By.CSS_SELECTOR, css) or [None])[0])
        if not el.is_selected():
            self.d.execute_script("arguments[0].click();", el)
        self.wait(f"'{key}' checked", el.is_selected, timeout=5)

    def tab(self, title, root):
        """A step of a magnum-ui workflow dialog, by its title in the dialog's navigation."""
        links = [a for a in root.find_elements(By.CSS_SELECTOR, ".nav a, .wizard-nav a, ul.nav-pills a, li a")
                 if " ".join(a.text.split()) == title and a.is_displayed()]
        if not links:
            raise Failure(f"the dialog has no step '{title}'")
        self.click(links[0])
        time.sleep(0.4)

    def row(self, name):
        for tr in self.visible("table tbody tr"):
            tds = tr.find_elements(By.TAG_NAME, "td")
            if any(td.text.strip() == name for td in tds):
                return tr
        return None

    def login(self, user, password):
        self.d.delete_all_cookies()
        self.get("/auth/login/")
        self.field("username").send_keys(user)
        self.d.find_element(By.ID, "id_password").send_keys(password)
        self.logins += 1
        self.click(self.d.find_element(By.ID, "loginBtn"))
        self.wait("the login to finish", lambda: "/auth/login" not in self.d.current_url, timeout=60)
        self.wait_angular()
        who = self.visible(".nav .dropdown-toggle .user-name, .user-menu .dropdown-toggle, #profile_editor_switcher")
        texts = " ".join(e.text for e in self.d.find_elements(By.CSS_SELECTOR, ".navbar, header"))
        if user not in texts:
            raise Failure(f"after the login the page does not show user {user} ({self.d.current_url}; {who})")

    # ---- the flow --------------------------------------------------------------------------------------------
    def run(self):
        a = self.a
        tpl = f"hz-tpl-{int(time.time()) % 100000}"
        cluster = f"hz-cluster-{int(time.time()) % 100000}"
        keypair = "hz-key"
        ok = self.check("admin logs in through the login form", lambda: self.login(a.admin_user, a.admin_password))
        if ok:
            self.check("admin opens Container Infra > Cluster Templates", lambda: self.open_panel("/project/cluster_templates/", "Cluster Templates"))
            self.check("admin creates a public cluster template with the form", lambda: self.create_template(tpl))
        self.check("demo logs in through the login form", lambda: self.login(a.demo_user, a.demo_password))
        self.check("demo opens Container Infra > Cluster Templates and sees the public template",
                   lambda: (self.open_panel("/project/cluster_templates/", "Cluster Templates"),
                            self.wait(f"template {tpl} in the table", lambda: self.row(tpl), timeout=10)))
        self.check("demo creates a key pair in Project > Key Pairs", lambda: self.create_keypair(keypair))
        self.check("demo opens Container Infra > Clusters", lambda: self.open_panel("/project/clusters/", "Clusters"))
        created = self.check("demo creates a cluster with the form", lambda: self.create_cluster(cluster, tpl, keypair))
        if created:
            complete = self.check("the cluster reaches CREATE_COMPLETE in the Clusters table",
                                  lambda: self.watch_status(cluster, "CREATE_COMPLETE", a.cluster_timeout))
            self.check("the cluster's detail page shows it", lambda: self.open_detail(cluster))
            if complete:
                if self.check("Resize from the detail page: 1 -> 2 workers", lambda: self.resize(cluster, 2, 1)):
                    grown = self.check("the resize reaches UPDATE_COMPLETE with 2 workers",
                                       lambda: self.watch_status(cluster, "UPDATE_COMPLETE", a.cluster_timeout, node_count="2"))
                    if grown and self.check("Resize: 2 -> 1 workers, choosing the older worker to remove",
                                            lambda: self.resize(cluster, 1, 2, remove=1)):
                        if self.check("the resize reaches UPDATE_COMPLETE with 1 worker",
                                      lambda: self.watch_status(cluster, "UPDATE_COMPLETE", a.cluster_timeout, node_count="1")):
                            self.check("the worker chosen for removal is the one removed", lambda: self.removed_worker_gone(cluster))
            self.check("Delete Cluster, and the cluster leaves the table", lambda: self.delete_cluster(cluster, a.cluster_timeout))
        self.check("demo's other panels open without errors", self.other_panels)
        self.check("demo logs out", lambda: (self.get("/auth/logout/"),
                                             self.wait("the login form", lambda: self.visible("#id_username"))))
        if self.check("admin logs in again", lambda: self.login(a.admin_user, a.admin_password)):
            self.check("admin's panels open without errors (/admin/, Admin > Container Infra > Quotas, Identity > Projects, Users)",
                       lambda: self.other_panels(("/admin/", "/admin/container_infra/quotas/", "/identity/", "/identity/users/")))
            self.check("Identity > Users offers no Create/Edit/Delete (the built-in identity serves none of them)",
                       self.no_user_editing)
            renamed = tpl + "-renamed"
            if self.check("admin renames the cluster template with Update Cluster Template", lambda: self.update_template(tpl, renamed)):
                tpl = renamed
            self.check("admin deletes the cluster template, and it leaves the table",
                       lambda: self.delete_row("/project/cluster_templates/", tpl, "Delete Cluster Template",
                                               "Delete Cluster Template", 30))

    def open_panel(self, path, title):
        self.get(path)
        self.wait(f"the '{title}' heading", lambda: any(title == h.text.strip() for h in self.visible("h1, .page-header h1")))
        self.wait("the table", lambda: self.visible("table"))

    def create_template(self, name):
        self.click(self.button("Create Cluster Template"))
        m = self.modal()
        self.fill("name", name, m)
        self.fill("coe", "Kubernetes", m)
        self.checkbox("public", m)
        self.click(self.button("Next", m))
        self.fill("image_id", None, m)
        self.fill("flavor_id", "m1.small", m)
        self.fill("master_flavor_id", "m1.small", m)
        self.click(self.button("Next", m))
        self.fill("network_driver", "Calico", m)
        self.fill("external_network_id", None, m)
        self.shot("template form filled")
        self.click(self.button("Submit", m))
        self.wait("the dialog to close", lambda: not self.visible(".modal-dialog"), timeout=30)
        self.wait_angular()
        self.wait(f"template {name} in the table", lambda: self.row(name), timeout=20)

    def create_keypair(self, name):
        self.get("/project/key_pairs/")
        self.wait("the Key Pairs table", lambda: self.visible("table"))
        self.click(self.button("Create Key Pair"))
        m = self.modal()
        inp = self.wait("the key pair name field", lambda: (self.visible("input[name=name], input#name, input[ng-model*=name]", m) or [None])[0])
        inp.send_keys(name)
        key_type = self.visible("select", m)
        if key_type:
            Select(key_type[0]).select_by_visible_text("SSH Key")
        self.click(self.button("Create Key Pair", m))
        # Horizon 23 hands the private key over as a download and closes the dialog (older ones show it with "Done").
        def closed_or_done():
            dialogs = self.visible(".modal-dialog")
            if not dialogs:
                return True
            return next((b for b in self.visible("button", dialogs[-1]) if b.text.strip() in ("Done", "Close")), None)
        done = self.wait("the dialog to close", closed_or_done, timeout=30)
        if done is not True:
            self.click(done)
            self.wait("the dialog to close", lambda: not self.visible(".modal-dialog"), timeout=15)
        # The table refreshes itself after the action; then a fresh load of the panel must list it too.
        self.wait(f"key pair {name} in the table", lambda: self.row(name), timeout=15)
        self.get("/project/api_access/")
        self.get("/project/key_pairs/")
        self.wait(f"key pair {name} in the table after a reload ({self.d.current_url})", lambda: self.row(name), timeout=15)

    def create_cluster(self, name, template, keypair):
        self.click(self.button("Create Cluster"))
        m = self.modal()
        self.fill("name", name, m)
        self.fill("cluster_template_id", template, m)
        self.fill("availability_zone", None, m)
        self.fill("keypair", keypair, m)
        self.tab("Size", m)
        self.fill("master_count", 1, m)
        self.fill("node_count", 1, m)
        self.shot("cluster form filled")
        self.click(self.button("Submit", m))
        self.wait("the dialog to close", lambda: not self.visible(".modal-dialog"), timeout=30)
        self.wait_angular()
        self.wait(f"cluster {name} in the table", lambda: self.row(name), timeout=20)

    def status_of(self, name):
        tr = self.row(name)
        if tr is None:
            return None, None
        cells = [td.text.strip() for td in tr.find_elements(By.TAG_NAME, "td")]
        status = next((c for c in cells if re.fullmatch(r"[A-Z_]+_(COMPLETE|FAILED|IN_PROGRESS)", c)), "?")
        return status, cells

    def column(self, name, header):
        """The cell of the row named name under the column header."""
        heads = [" ".join(th.text.split()) for th in self.visible("table thead tr th")]
        if header not in heads:
            raise Failure(f"the table has no column '{header}' ({heads})")
        tds = self.row(name).find_elements(By.TAG_NAME, "td")
        return tds[heads.index(header)].text.strip() if heads.index(header) < len(tds) else None

    def watch_status(self, name, want, timeout, node_count=None):
        seen = []
        end = time.time() + timeout
        while time.time() < end:
            self.get("/project/clusters/")
            self.wait(f"cluster {name} in the table", lambda: self.row(name), timeout=20)
            status, cells = self.status_of(name)
            if not seen or seen[-1] != status:
                seen.append(status)
            if status and status.endswith("FAILED"):
                raise Failure(f"cluster went {status} (statuses seen: {' -> '.join(seen)})")
            if status == want and (node_count is None or self.column(name, "Node Count") == node_count):
                print(f"      statuses seen in the table: {' -> '.join(seen)}", flush=True)
                return True
            time.sleep(2)
        raise Failure(f"cluster not {want} after {timeout}s (statuses seen: {' -> '.join(seen)})")

    def open_detail(self, name):
        self.get("/project/clusters/")
        tr = self.wait(f"cluster {name} in the table", lambda: self.row(name))
        link = next(a for a in tr.find_elements(By.TAG_NAME, "a") if a.text.strip() == name)
        self.click(link)
        self.wait("the detail page", lambda: "/ngdetails/" in self.d.current_url or "/details" in self.d.current_url, timeout=20)
        self.wait_angular()
        self.wait(f"'{name}' on the detail page", lambda: any(name in h.text for h in self.visible("h1, .page-header, .detail-header")), timeout=20)
        body = self.d.find_element(By.TAG_NAME, "body").text
        for label in ("Status", "Cluster Template", "Node Count"):
            if label not in body:
                raise Failure(f"the detail page has no '{label}'")

    def item_action(self, text):
        """An action of the item's action menu (detail page header or table row): the first is a button, the rest in a dropdown."""
        direct = [b for b in self.visible("button, a") if " ".join(b.text.split()) == text]
        if direct:
            return direct[0]
        toggles = self.visible(".btn-group .dropdown-toggle, actions .dropdown-toggle")
        for t in toggles:
            self.click(t)
            time.sleep(0.3)
            items = [a for a in self.visible(".dropdown-menu a, .dropdown-menu button") if " ".join(a.text.split()) == text]
            if items:
                return items[0]
            self.click(t)
        raise Failure(f"no action '{text}' on the page")

    def resize(self, name, count, current, remove=0):
        """Resize from the detail page; the dialog must start at the cluster's worker count (it counts the workers
        among the servers of the cluster's stack) and, when shrinking, offer those workers to choose from."""
        self.open_detail(name)
        self.click(self.item_action("Resize Cluster"))
        m = self.modal()
        start = self.field("node_count", m).get_attribute("value")
        if start != str(current):
            raise Failure(f"the Resize dialog starts at {start!r} workers, the cluster has {current}")
        self.fill("node_count", count, m)
        if remove:
            boxes = self.wait("the workers to choose from", lambda: [
                b for b in m.find_elements(By.CSS_SELECTOR, "input[type=checkbox]") if b.find_elements(By.XPATH, "./ancestor::label")], timeout=10)
            if len(boxes) != current:
                raise Failure(f"the dialog offers {len(boxes)} workers to remove, the cluster has {current}")
            # The oldest workers (lowest index), which Magnetar would not pick by itself (it removes the newest first).
            label = lambda b: " ".join(b.find_element(By.XPATH, "./ancestor::label").text.split())  # noqa: E731
            boxes.sort(key=label)
            self.removed = []
            for b in boxes[:remove]:
                self.removed.append(" ".join(b.find_element(By.XPATH, "./ancestor::label").text.split()))
                self.d.execute_script("arguments[0].click();", b)
        self.shot(f"resize to {count} form filled")
        self.click(self.button("Submit", m))
        self.wait("the dialog to close", lambda: not self.visible(".modal-dialog"), timeout=30)
        self.wait_angular()

    def removed_worker_gone(self, name):
        """The Resize dialog, asked for 0 workers, lists the remaining ones: the removed worker must not be there."""
        self.open_detail(name)
        self.click(self.item_action("Resize Cluster"))
        m = self.modal()
        self.fill("node_count", 0, m)
        labels = self.wait("the workers listed", lambda: [" ".join(l.text.split()) for l in m.find_elements(By.CSS_SELECTOR, "label")
                                                          if l.find_elements(By.CSS_SELECTOR, "input[type=checkbox]")], timeout=10)
        self.click(self.button("Cancel", m))
        self.wait("the dialog to close", lambda: not self.visible(".modal-dialog"), timeout=15)
        if any(r in labels for r in self.removed):
            raise Failure(f"removed worker {self.removed} still listed: {labels}")
        if len(labels) != 1:
            raise Failure(f"expected 1 remaining worker, the dialog lists {labels}")
        print(f"      removed {self.removed}, remaining {labels}", flush=True)

    def row_action(self, path, name, action):
        """Clicks a table row's action: the first is a button, the rest are in the row's dropdown."""
        self.get(path)
        tr = self.wait(f"{name} in the table", lambda: self.row(name))
        self.d.execute_script("arguments[0].scrollIntoView({block: 'center'});", tr)
        def find():
            return next((a for a in tr.find_elements(By.CSS_SELECTOR, "a, button")
                         if a.is_displayed() and " ".join(a.text.split()) == action), None)
        if find() is None:
            toggle = tr.find_elements(By.CSS_SELECTOR, ".dropdown-toggle")
            if toggle:
                self.click(toggle[0])
        self.click(self.wait(f"the {action} action", find, timeout=10))

    def update_template(self, name, new_name):
        self.row_action("/project/cluster_templates/", name, "Update Cluster Template")
        m = self.modal()
        self.wait("the form to show the template", lambda: self.field("name", m).get_attribute("value") == name, timeout=15)
        self.fill("name", new_name, m)
        self.shot("template update form filled")
        self.click(self.button("Submit", m))
        self.wait("the dialog to close", lambda: not self.visible(".modal-dialog"), timeout=30)
        self.get("/project/cluster_templates/")
        self.wait(f"template {new_name} in the table", lambda: self.row(new_name), timeout=15)

    def delete_row(self, path, name, action, confirm, timeout):
        """A table row's action, confirmed; then until the row is gone."""
        self.row_action(path, name, action)
        m = self.modal()
        self.click(self.button(confirm, m))
        self.wait("the dialog to close", lambda: not self.visible(".modal-dialog"), timeout=30)
        end = time.time() + timeout
        while time.time() < end:
            self.get(path)
            if self.row(name) is None:
                return
            time.sleep(2)
        raise Failure(f"{name} still in the table after {timeout}s")

    def delete_cluster(self, name, timeout):
        self.delete_row("/project/clusters/", name, "Delete Cluster", "Delete Cluster", timeout)

    def other_panels(self, paths=("/project/api_access/", "/project/key_pairs/", "/identity/", "/settings/")):
        bad = []
        for path in paths:
            self.get(path)
            time.sleep(0.5)
            errs = self.page_errors()
            if errs:
                bad.append(f"{path}: {errs}")
        if bad:
            raise Failure("; ".join(bad))

    def no_user_editing(self):
        self.get("/identity/users/")
        self.wait("user demo in the table", lambda: self.row("demo"))
        offered = [b.text.strip() for b in self.visible("button, a.btn") if b.text.strip() in ("Create User", "Edit", "Delete Users")]
        if offered:
            raise Failure(f"the Users panel offers {offered}")

    def close(self):
        try:
            self.d.quit()
        except WebDriverException:
            pass


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="Horizon's URL (scripts/dashboard)")
    p.add_argument("--admin-user", default="admin")
    p.add_argument("--admin-password", required=True)
    p.add_argument("--demo-user", default="demo")
    p.add_argument("--demo-password", required=True)
    p.add_argument("--magnetar-log", help="Magnetar's log with Microsoft.AspNetCore.Hosting.Diagnostics at Information")
    p.add_argument("--out", default=".work/test-results/horizon", help="screenshots")
    p.add_argument("--cluster-timeout", type=int, default=90)
    p.add_argument("--chromium", default="/usr/bin/chromium")
    p.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = p.parse_args()
    print("allowed Magnetar answers: " + "; ".join(f"{m} {rx} {st} ({why})" for m, rx, st, why in ALLOWED_MAGNETAR))
    print("allowed browser failures: " + "; ".join(f"{rx} {st} ({why})" for rx, st, why in ALLOWED_BROWSER)
          + "; console: " + "; ".join(f"{rx} ({why})" for rx, why in ALLOWED_CONSOLE), flush=True)
    flow = None
    try:
        flow = Flow(args)
        flow.run()
    except Exception as e:  # noqa: BLE001
        print(f"FAIL  the browser could not be driven: {e}")
        if flow is None:
            print("0 passed, 1 failed")
            return 1
        flow.failed += 1
    finally:
        if flow is not None:
            flow.close()
    print(f"{flow.passed} passed, {flow.failed} failed")
    return 1 if flow.failed else 0


if __name__ == "__main__":
    sys.exit(main())
