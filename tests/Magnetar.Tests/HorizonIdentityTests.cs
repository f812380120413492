using System.Net;
using System.Text.Json.Nodes;

namespace Magnetar.Tests;

/// <summary>
/// The built-in identity as Horizon's openstack_auth uses it: an unscoped password token, the user's projects listed
/// with it, then a token-method rescope to a project (Keystone's audit chain), tokens validated and deleted at logout.
/// </summary>
public sealed class HorizonIdentityTests(CliIdentityFixture server) : IClassFixture<CliIdentityFixture>
{
    private TestHost Host => server.Host;

    private static string PasswordBody(string user, string password, string scope)
        => """{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "USER", "domain": {"name": "Default"}, "password": "PASSWORD"}}}SCOPE}}"""
            .Replace("USER", user).Replace("PASSWORD", password).Replace("SCOPE", scope);

    private static string TokenBody(string token, string scope)
        => """{"auth": {"identity": {"methods": ["token"], "token": {"id": "TOKEN"}}SCOPE}}""".Replace("TOKEN", token).Replace("SCOPE", scope);

    private async Task<(string Token, JsonNode Body)> Issue(string body, int status = 201)
    {
        var resp = await Host.Anonymous().PostAsync("/identity/v3/auth/tokens", Http.Json(body));
        var json = await resp.ReadJsonAsync();
        Assert.True((int)resp.StatusCode == status, $"expected {status}, got {(int)resp.StatusCode}: {json.ToJsonString()}");
        return (status == 201 ? resp.Headers.GetValues("X-Subject-Token").Single() : "", json);
    }

    private Task<(string Token, JsonNode Body)> Unscoped(string user = "t-demo") => Issue(PasswordBody(user, TestHost.Password, ""));

    private HttpClient With(string token)
    {
        var c = Host.Anonymous();
        c.DefaultRequestHeaders.Add("X-Auth-Token", token);
        return c;
    }

    private static string[] AuditIds(JsonNode token) => token["audit_ids"]!.AsArray().Select(a => a!.GetValue<string>()).ToArray();

    [Theory]
    [InlineData("")]
    [InlineData(""", "scope": "unscoped" """)]
    public async Task Password_login_without_scope_or_with_scope_unscoped_gives_an_unscoped_token(string scope)
    {
        var (token, body) = await Issue(PasswordBody("t-demo", TestHost.Password, scope));
        Assert.StartsWith("mgt", token);
        var t = body["token"]!;
        Assert.Equal(["password"], t["methods"]!.AsArray().Select(m => m!.GetValue<string>()));
        Assert.Equal("t-demo", t["user"]!["name"]!.GetValue<string>());
        Assert.Equal("default", t["user"]!["domain"]!["id"]!.GetValue<string>());
        // as Keystone's unscoped tokens: no project, roles or catalog
        Assert.Null(t["project"]);
        Assert.Null(t["roles"]);
        Assert.Null(t["catalog"]);
        Assert.Single(AuditIds(t));
        // an unscoped token is not accepted by the Magnum API, which needs a project, and has no catalog
        await With(token).GetAsync("/v1/clusters").ExpectAsync(401);
        var noCatalog = await With(token).GetAsync("/identity/v3/auth/catalog").ExpectAsync(403);
        Assert.Equal("A project-scoped token is required to produce a service catalog.", noCatalog["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Wrong_password_and_unknown_user_are_401()
    {
        var (_, wrong) = await Issue(PasswordBody("t-demo", "not-the-password", ""), 401);
        Assert.Equal(401, wrong["error"]!["code"]!.GetValue<int>());
        Assert.Equal("Unauthorized", wrong["error"]!["title"]!.GetValue<string>());
        await Issue(PasswordBody("nobody-here", TestHost.Password, ""), 401);
        // a user named without its domain is a malformed request (Keystone's 400), not a failed login
        var (_, noDomain) = await Issue("""{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "t-demo", "password": "x"}}}}}""", 400);
        Assert.StartsWith("Expecting to find domain in user.", noDomain["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Unscoped_token_lists_the_users_projects_and_nothing_else()
    {
        var (token, body) = await Unscoped();
        var userId = body["token"]!["user"]!["id"]!.GetValue<string>();
        var c = With(token);
        var viaAuth = await c.GetAsync("/identity/v3/auth/projects").ExpectAsync(200);
        Assert.Equal(["demo"], viaAuth["projects"]!.AsArray().Select(p => p!["name"]!.GetValue<string>()));
        var viaUser = await c.GetAsync($"/identity/v3/users/{userId}/projects").ExpectAsync(200);
        var project = Assert.Single(viaUser["projects"]!.AsArray())!;
        Assert.Equal("demo", project["name"]!.GetValue<string>());
        Assert.True(project["enabled"]!.GetValue<bool>());
        Assert.Equal("default", project["domain_id"]!.GetValue<string>());

        // another user's projects: Keystone's policy refuses
        var (otherToken, other) = await Unscoped("t-other");
        var otherId = other["token"]!["user"]!["id"]!.GetValue<string>();
        await c.GetAsync($"/identity/v3/users/{otherId}/projects").ExpectAsync(403);
        Assert.Equal(["other"], (await With(otherToken).GetAsync("/identity/v3/auth/projects").ExpectAsync(200))["projects"]!.AsArray().Select(p => p!["name"]!.GetValue<string>()));

        // what openstack_auth asks besides: no domain or system roles exist, the user itself, the domain
        Assert.Empty((await c.GetAsync("/identity/v3/auth/domains").ExpectAsync(200))["domains"]!.AsArray());
        Assert.Empty((await c.GetAsync("/identity/v3/auth/system").ExpectAsync(200))["system"]!.AsArray());
        var user = await c.GetAsync($"/identity/v3/users/{userId}").ExpectAsync(200);
        Assert.Equal("t-demo", user["user"]!["name"]!.GetValue<string>());
        await c.GetAsync($"/identity/v3/users/{otherId}").ExpectAsync(403);
        await c.GetAsync("/identity/v3/domains/default").ExpectAsync(403); // unscoped: Keystone's policy needs a scope
        await Host.Anonymous().GetAsync("/identity/v3/auth/projects").ExpectAsync(401);
    }

    [Fact]
    public async Task Unscoped_token_rescopes_to_a_project_by_id_or_by_name_with_keystones_audit_chain()
    {
        var (unscoped, ub) = await Unscoped();
        var parentAudit = AuditIds(ub["token"]!).Single();
        var projects = await With(unscoped).GetAsync("/identity/v3/auth/projects").ExpectAsync(200);
        var demoId = projects["projects"]![0]!["id"]!.GetValue<string>();

        foreach (var scope in new[] { $$$""", "scope": {"project": {"id": "{{{demoId}}}"}}""", """, "scope": {"project": {"name": "demo", "domain": {"name": "Default"}}}""" })
        {
            var (scoped, sb) = await Issue(TokenBody(unscoped, scope));
            var t = sb["token"]!;
            Assert.Equal(demoId, t["project"]!["id"]!.GetValue<string>());
            Assert.Equal(["member"], t["roles"]!.AsArray().Select(r => r!["name"]!.GetValue<string>()));
            Assert.Contains(t["catalog"]!.AsArray(), s => s!["type"]!.GetValue<string>() == "container-infra");
            var audit = AuditIds(t);
            Assert.Equal(2, audit.Length);
            Assert.NotEqual(parentAudit, audit[0]);
            Assert.Equal(parentAudit, audit[1]);
            Assert.Equal(["token", "password"], t["methods"]!.AsArray().Select(m => m!.GetValue<string>()));
            Assert.Equal(ub["token"]!["expires_at"]!.GetValue<string>(), t["expires_at"]!.GetValue<string>());
            // the rescoped token works on the Magnum API and may read its domain
            var c = With(scoped);
            await c.GetAsync("/v1/clusters").ExpectAsync(200);
            Assert.Equal("Default", (await c.GetAsync("/identity/v3/domains/default").ExpectAsync(200))["domain"]!["name"]!.GetValue<string>());
            await c.GetAsync("/identity/v3/domains/other").ExpectAsync(403);
        }
    }

    [Fact]
    public async Task Rescoping_to_a_project_without_a_role_or_to_a_domain_or_the_system_is_401()
    {
        var (unscoped, _) = await Unscoped();
        // demo has no role on project admin (it exists), nor on an unknown project
        await Issue(TokenBody(unscoped, """, "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}"""), 401);
        await Issue(TokenBody(unscoped, """, "scope": {"project": {"id": "0000000000000000000000000000dead"}}"""), 401);
        await Issue(PasswordBody("t-demo", TestHost.Password, """, "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}"""), 401);
        await Issue(TokenBody(unscoped, """, "scope": {"project": {"name": "demo", "domain": {"name": "Nowhere"}}}"""), 401);
        // what openstack_auth tries at every login: a domain-scoped, then (no auth.system in keystoneclient) a system-scoped token
        await Issue(TokenBody(unscoped, """, "scope": {"domain": {"name": "Default"}}"""), 401);
        await Issue(TokenBody(unscoped, """, "scope": {"system": {"all": true}}"""), 401);
        // a token that is not one
        await Issue(TokenBody("mgtforged-token-value", ""), 401);
    }

    [Theory]
    [InlineData(""", "scope": {}""", "project, domain, OS-TRUST:trust or unscoped in scope")]
    [InlineData(""", "scope": 5""", "project, domain, OS-TRUST:trust or unscoped in scope")]
    [InlineData(""", "scope": {"project": {}}""", "id or name in project")]
    [InlineData(""", "scope": {"project": {"name": "demo"}}""", "domain in project")]
    [InlineData(""", "scope": {"project": {"name": "demo", "domain": {}}}""", "id or name in domain")]
    [InlineData(""", "scope": {"domain": {}}""", "id or name in domain")]
    [InlineData(""", "scope": {"project": {"name": "demo", "domain": {"id": "default"}}, "domain": {"id": "default"}}""", "project, domain, OS-TRUST:trust or unscoped in scope")]
    public async Task Malformed_scopes_are_keystones_400(string scope, string expecting)
    {
        var (_, body) = await Issue(PasswordBody("t-demo", TestHost.Password, scope), 400);
        Assert.Equal(400, body["error"]!["code"]!.GetValue<int>());
        Assert.StartsWith($"Expecting to find {expecting}.", body["error"]!["message"]!.GetValue<string>());
    }

    [Fact]
    public async Task Unscoped_and_rescoped_tokens_validate_and_logout_revokes_them()
    {
        var (unscoped, ub) = await Unscoped();
        var (scoped, sb) = await Issue(TokenBody(unscoped, """, "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}"""));

        async Task<JsonNode> Validate(string auth, string subject, int status = 200)
        {
            var c = With(auth);
            c.DefaultRequestHeaders.Add("X-Subject-Token", subject);
            var resp = await c.GetAsync("/identity/v3/auth/tokens");
            var text = await resp.Content.ReadAsStringAsync();
            Assert.True((int)resp.StatusCode == status, $"expected {status}, got {(int)resp.StatusCode}: {text}");
            if (status == 200) Assert.Equal(subject, resp.Headers.GetValues("X-Subject-Token").Single());
            return JsonNode.Parse(text)!;
        }

        var u = (await Validate(scoped, unscoped))["token"]!;
        Assert.Null(u["project"]);
        Assert.Null(u["catalog"]);
        Assert.Equal(AuditIds(ub["token"]!), AuditIds(u));
        var s = (await Validate(unscoped, scoped))["token"]!;
        Assert.Equal("demo", s["project"]!["name"]!.GetValue<string>());
        Assert.Equal(AuditIds(sb["token"]!), AuditIds(s));
        Assert.Equal(2, AuditIds(s).Length);
        await Validate(unscoped, "mgtnot-a-token", 404);

        // Horizon's logout deletes both tokens
        foreach (var t in new[] { scoped, unscoped })
        {
            var c = With(t);
            c.DefaultRequestHeaders.Add("X-Subject-Token", t);
            Assert.Equal(HttpStatusCode.NoContent, (await c.DeleteAsync("/identity/v3/auth/tokens")).StatusCode);
        }
        await With(scoped).GetAsync("/v1/clusters").ExpectAsync(401);
        await With(unscoped).GetAsync("/identity/v3/auth/projects").ExpectAsync(401);
        await Issue(TokenBody(unscoped, """, "scope": {"project": {"name": "demo", "domain": {"id": "default"}}}"""), 401);
    }
}

/// <summary>keystoneauth1 and keystoneclient (Debian's, as openstack_auth drives them) against the real server process.</summary>
public sealed class HorizonLoginProcessTests(ServerProcessFixture server) : IClassFixture<ServerProcessFixture>
{
    private const string Script = """
        import json, sys
        from keystoneauth1 import session, token_endpoint
        from keystoneauth1 import exceptions as ks_exc
        from keystoneauth1.identity import v3
        from keystoneclient.v3 import client as v3_client
        url, user, password = sys.argv[1:4]
        sess = session.Session()
        out = {}
        # openstack_auth's PasswordPlugin: an unscoped token first
        unscoped = v3.Password(auth_url=url, username=user, password=password, user_domain_name='Default', unscoped=True)
        ref = unscoped.get_access(sess)
        out['unscoped_project'] = ref.project_id
        out['unscoped_catalog'] = len(ref.service_catalog.catalog or [])
        # get_domain_scoped_auth: a domain token for the user's domain (fails without a domain role, and login goes on)
        try:
            v3.Token(auth_url=url, token=ref.auth_token, domain_name='Default', reauthenticate=False).get_access(sess)
            out['domain'] = 'scoped'
        except ks_exc.ClientException as e:
            out['domain'] = type(e).__name__
        # list_projects (plugin/base.py) and utils.get_project_list (project switcher)
        projects = v3_client.Client(session=sess, auth=unscoped).projects.list(user=ref.user_id)
        out['projects'] = [p.name for p in projects if p.enabled]
        listed = v3_client.Client(session=sess, auth=token_endpoint.Token(url, ref.auth_token)).projects.list(user=ref.user_id)
        out['projects_by_token'] = [p.name for p in listed]
        # get_project_scoped_auth
        scoped = v3.Token(auth_url=url, token=ref.auth_token, project_id=projects[0].id, reauthenticate=False)
        sref = scoped.get_access(sess)
        out['scoped_project'] = sref.project_name
        out['roles'] = sref.role_names
        out['audit_ids'] = [sref.audit_id, sref.audit_chain_id]
        out['parent_audit'] = ref.audit_id
        out['magnum'] = sref.service_catalog.url_for(service_type='container-infra', interface='public')
        out['identity'] = sref.service_catalog.url_for(service_type='identity', interface='public')
        print(json.dumps(out))
        """;

    /// <summary>Runs a Python script with Debian's python3 as the demo user (auth URL, user, password as arguments); it must succeed.</summary>
    private async Task<CommandResult> RunAsDemoAsync(string file, string text, int timeoutSeconds)
    {
        var rc = server.Openrc("openrc-demo");
        var script = Path.Combine(server.Home, file);
        await File.WriteAllTextAsync(script, text);
        var r = await OpenStackCli.ExecAsync("/usr/bin/python3", server.Home, null, [script, rc["OS_AUTH_URL"], rc["OS_USERNAME"], rc["OS_PASSWORD"]], timeoutSeconds);
        Assert.True(r.ExitCode == 0, $"python failed ({r.ExitCode}): {r.Stderr}\n{r.Stdout}\n--- server log ---\n{server.Log}");
        return r;
    }

    [Fact]
    public async Task Keystoneauth_logs_in_unscoped_lists_projects_and_rescopes_as_openstack_auth()
    {
        var r = await RunAsDemoAsync("horizon_login.py", Script, 60);
        var o = JsonNode.Parse(r.Stdout)!;
        Assert.Null(o["unscoped_project"]);
        Assert.Equal(0, o["unscoped_catalog"]!.GetValue<int>());
        Assert.Equal("Unauthorized", o["domain"]!.GetValue<string>());
        Assert.Equal(["demo"], o["projects"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal(["demo"], o["projects_by_token"]!.AsArray().Select(p => p!.GetValue<string>()));
        Assert.Equal("demo", o["scoped_project"]!.GetValue<string>());
        Assert.Equal(["member"], o["roles"]!.AsArray().Select(p => p!.GetValue<string>()));
        var audit = o["audit_ids"]!.AsArray().Select(a => a!.GetValue<string>()).ToArray();
        Assert.Equal(2, audit.Length);
        Assert.Equal(o["parent_audit"]!.GetValue<string>(), audit[1]);
        Assert.Equal(server.Url + "/v1", o["magnum"]!.GetValue<string>());
        Assert.Equal(server.Url + "/identity/v3", o["identity"]!.GetValue<string>());
    }

    /// <summary>Horizon's own code (Debian's openstack-dashboard 23 settings, openstack_auth, openstack_dashboard.api, magnum_ui.api) in process.</summary>
    private const string HorizonScript = """
        import json, os, sys, time
        url, user, password = sys.argv[1:4]
        os.environ['DJANGO_SETTINGS_MODULE'] = 'openstack_dashboard.settings'
        import django
        django.setup()
        from django.conf import settings
        settings.OPENSTACK_KEYSTONE_URL = url
        from django.test import RequestFactory
        from django.contrib.sessions.backends.signed_cookies import SessionStore
        from openstack_auth.backend import KeystoneBackend
        from openstack_dashboard import api
        from magnum_ui.api import magnum, heat
        out = {}
        # the login form: openstack_auth's backend (unscoped token, domain attempt, project list, rescope)
        req = RequestFactory().post('/auth/login/')
        req.session = SessionStore()
        u = KeystoneBackend().authenticate(req, auth_url=url, username=user, password=password, user_domain_name='Default')
        req.user = u
        out['project'] = u.project_name
        out['roles'] = [r['name'] for r in u.roles]
        out['authorized'] = [p.name for p in u.authorized_tenants]
        out['services'] = sorted(s['type'] for s in u.service_catalog)
        # what magnum-ui's forms list
        flavors = api.nova.flavor_list(req)
        images = api.glance.image_list_detailed(req)[0]
        networks = api.neutron.network_list_for_tenant(req, u.tenant_id, include_external=True)
        out['flavors'] = [f.name for f in flavors]
        out['images'] = sorted(i.name for i in images)
        out['networks'] = [n.name for n in networks]
        out['zones'] = [z.zoneName for z in api.nova.availability_zone_list(req)]
        key = 'hz-%d' % os.getpid()
        out['private_key'] = bool(api.nova.keypair_create(req, key).private_key)
        out['keypairs'] = [k.name for k in api.nova.keypair_list(req)]
        # Create Cluster Template and Create Cluster with what the forms offer (ids), then the Resize form's lookup
        tpl = magnum.cluster_template_create(req, name='hz-tpl', coe='kubernetes', image_id=[i.id for i in images if i.name == 'fedora-coreos-40'][0],
            external_network_id=networks[0].id, flavor_id=[f.id for f in flavors if f.name == 'm1.small'][0],
            master_flavor_id=[f.id for f in flavors if f.name == 'm1.medium'][0], network_driver='calico')
        c = magnum.cluster_create(req, rollback=False, name='hzc', cluster_template_id=tpl.uuid, node_count=2, master_count=1, keypair=key)
        for i in range(240):
            cluster = magnum.cluster_show(req, c.uuid).to_dict()
            if cluster['status'] == 'CREATE_COMPLETE': break
            time.sleep(0.5)
        out['status'] = cluster['status']
        stack = heat.stack_get(req, cluster['stack_id'])
        servers = api.nova.server_list(req, search_opts={'name': '%s-' % stack.stack_name})[0]
        out['workers'] = len([s for s in servers if s.name.startswith('%s-minion' % stack.stack_name) or s.name.startswith('%s-node' % stack.stack_name)])
        out['node_count'] = cluster['node_count']
        api.nova.keypair_delete(req, key)
        print(json.dumps(out))
        """;

    [Fact]
    public async Task Horizon_logs_in_and_magnum_ui_forms_list_the_simulated_cloud_and_count_a_clusters_workers()
    {
        var r = await RunAsDemoAsync("hz_forms.py", HorizonScript, 150);
        var o = JsonNode.Parse(r.Stdout.Trim().Split('\n')[^1])!;
        string[] Strings(string k) => o[k]!.AsArray().Select(x => x!.GetValue<string>()).ToArray();
        Assert.Equal("demo", o["project"]!.GetValue<string>());
        Assert.Equal(["member"], Strings("roles"));
        Assert.Equal(["demo"], Strings("authorized"));
        Assert.Equal(["compute", "container-infra", "identity", "image", "network", "orchestration"], Strings("services"));
        Assert.Contains("m1.small", Strings("flavors"));
        Assert.Equal(["fedora-coreos-40", "fedora-coreos-latest", "flatcar-stable", "ubuntu-22.04", "ubuntu-24.04"], Strings("images"));
        Assert.Equal(["public"], Strings("networks"));
        Assert.Equal(["nova"], Strings("zones"));
        Assert.True(o["private_key"]!.GetValue<bool>());
        Assert.Single(Strings("keypairs"), k => k.StartsWith("hz-"));
        Assert.Equal("CREATE_COMPLETE", o["status"]!.GetValue<string>());
        Assert.Equal(2, o["node_count"]!.GetValue<int>());
        Assert.Equal(2, o["workers"]!.GetValue<int>());
    }
}
