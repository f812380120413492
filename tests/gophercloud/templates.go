package main

import (
	"fmt"

	"github.com/gophercloud/gophercloud/openstack/containerinfra/v1/clustertemplates"
	"github.com/gophercloud/gophercloud/pagination"
)

const (
	imageID   = "fedora-coreos-40"
	flavorID  = "m1.small"
	extNet    = "public"
	extraTmpl = 4 // more templates, for pagination with limit 2
)

func boolp(b bool) *bool { return &b }
func intp(i int) *int    { return &i }

func checkTemplate(c *check, e *env, t *clustertemplates.ClusterTemplate, name string) {
	c.uuid("uuid", t.UUID)
	c.eq("name", t.Name, name)
	c.eq("coe", t.COE, "kubernetes")
	c.eq("image_id", t.ImageID, imageID)
	c.eq("flavor_id", t.FlavorID, flavorID)
	c.eq("master_flavor_id", t.MasterFlavorID, flavorID)
	c.eq("external_network_id", t.ExternalNetworkID, extNet)
	c.eq("network_driver", t.NetworkDriver, "calico")
	c.eq("cluster_distro (the image's os_distro)", t.ClusterDistro, "fedora-coreos")
	c.eq("docker_volume_size", t.DockerVolumeSize, 10)
	c.eq("server_type", t.ServerType, "vm")
	c.eq("labels", t.Labels, map[string]string{"gophercloud": "yes"})
	c.eq("floating_ip_enabled", t.FloatingIPEnabled, false)
	c.eq("master_lb_enabled", t.MasterLBEnabled, false)
	c.eq("public", t.Public, false)
	c.eq("tls_disabled", t.TLSDisabled, false)
	c.eq("project_id", t.ProjectID, e.demoProjectID)
	c.eq("user_id", t.UserID, e.demoUserID)
	c.recent("created_at", t.CreatedAt)
	c.links(t.Links, e.demo.Endpoint, "/clustertemplates/"+t.UUID)
}

func createTemplate(e *env, name string) clustertemplates.CreateResult {
	return clustertemplates.Create(e.demo, clustertemplates.CreateOpts{
		COE:                 "kubernetes",
		Name:                name,
		ImageID:             imageID,
		FlavorID:            flavorID,
		MasterFlavorID:      flavorID,
		ExternalNetworkID:   extNet,
		DNSNameServer:       "8.8.8.8",
		NetworkDriver:       "calico",
		DockerVolumeSize:    intp(10),
		DockerStorageDriver: "overlay2",
		ServerType:          "vm",
		Labels:              map[string]string{"gophercloud": "yes"},
		FloatingIPEnabled:   boolp(false),
		MasterLBEnabled:     boolp(false),
		Public:              boolp(false),
		RegistryEnabled:     boolp(false),
		TLSDisabled:         boolp(false),
	})
}

// testClusterTemplates creates the template the clusters use and extraTmpl more, reads, lists and updates them.
func testClusterTemplates(e *env) (*clustertemplates.ClusterTemplate, []string) {
	c := newCheck("clustertemplates.Create: 201 and the template as created")
	r := createTemplate(e, "gc-template")
	var tmpl *clustertemplates.ClusterTemplate
	if !c.err("Create", r.Err) {
		var err error
		tmpl, err = r.Extract()
		if !c.err("Extract", err) {
			checkTemplate(c, e, tmpl, "gc-template")
			c.eq("dns_nameserver", tmpl.DNSNameServer, "8.8.8.8")
			c.eq("docker_storage_driver", tmpl.DockerStorageDriver, "overlay2")
			c.nonEmpty("X-Openstack-Request-Id header", r.Header.Get("X-Openstack-Request-Id"))
		}
	}
	if !c.done() || tmpl == nil {
		return nil, nil
	}

	c = newCheck("clustertemplates.Get by uuid and by name")
	for _, ident := range []string{tmpl.UUID, tmpl.Name} {
		got, err := clustertemplates.Get(e.demo, ident).Extract()
		if !c.err("Get "+ident, err) {
			checkTemplate(c, e, got, "gc-template")
			c.eq("uuid", got.UUID, tmpl.UUID)
		}
	}
	c.done()

	c = newCheck("clustertemplates.Get of an unknown uuid: 404")
	if _, err := clustertemplates.Get(e.demo, "00000000-0000-4000-8000-000000000000").Extract(); !is404(err) {
		c.failf("got %v, want 404", err)
	}
	c.done()

	c = newCheck("clustertemplates.Create x%d more (for pagination)", extraTmpl)
	var extra []string
	for i := 0; i < extraTmpl; i++ {
		t, err := createTemplate(e, fmt.Sprintf("gc-template-%d", i)).Extract()
		if !c.err("Create", err) {
			checkTemplate(c, e, t, fmt.Sprintf("gc-template-%d", i))
			extra = append(extra, t.UUID)
		}
	}
	c.done()

	want := append([]string{tmpl.UUID}, extra...)
	for _, sortDir := range []string{"asc", "desc"} {
		c = newCheck("clustertemplates.List limit=2 sort_dir=%s: every page walked, each template once", sortDir)
		seen := map[string]int{}
		var order []string
		pages := 0
		err := clustertemplates.List(e.demo, clustertemplates.ListOpts{Limit: 2, SortKey: "name", SortDir: sortDir}).EachPage(func(p pagination.Page) (bool, error) {
			pages++
			ts, err := clustertemplates.ExtractClusterTemplates(p)
			if err != nil {
				return false, err
			}
			if len(ts) > 2 {
				c.failf("page %d has %d templates, limit is 2", pages, len(ts))
			}
			for _, t := range ts {
				seen[t.UUID]++
				order = append(order, t.Name)
				c.uuid("uuid", t.UUID)
				c.nonEmpty("name", t.Name)
				c.links(t.Links, e.demo.Endpoint, "/clustertemplates/"+t.UUID)
			}
			return pages < 20, nil
		})
		c.err("EachPage", err)
		checkPaged(c, seen, want, pages, len(want))
		for i := 1; i < len(order); i++ {
			if (sortDir == "asc" && order[i-1] > order[i]) || (sortDir == "desc" && order[i-1] < order[i]) {
				c.failf("not sorted by name %s: %v", sortDir, order)
				break
			}
		}
		c.done()
	}

	c = newCheck("clustertemplates.List without options: AllPages has every template")
	if all, err := clustertemplates.List(e.demo, nil).AllPages(); !c.err("AllPages", err) {
		ts, err := clustertemplates.ExtractClusterTemplates(all)
		if !c.err("Extract", err) {
			seen := map[string]int{}
			for _, t := range ts {
				seen[t.UUID]++
			}
			checkPaged(c, seen, want, -1, 0)
		}
	}
	c.done()

	c = newCheck("clustertemplates.Update (JSON patch replace, add, remove): 200 and the template as patched")
	patch := []clustertemplates.UpdateOptsBuilder{
		clustertemplates.UpdateOpts{Op: clustertemplates.ReplaceOp, Path: "/dns_nameserver", Value: "1.1.1.1"},
		clustertemplates.UpdateOpts{Op: clustertemplates.AddOp, Path: "/http_proxy", Value: "http://proxy.example:3128"},
		clustertemplates.UpdateOpts{Op: clustertemplates.ReplaceOp, Path: "/labels", Value: map[string]string{"gophercloud": "yes", "patched": "true"}},
	}
	ur := clustertemplates.Update(e.demo, tmpl.UUID, patch)
	if !c.err("Update", ur.Err) {
		t, err := ur.Extract()
		if !c.err("Extract", err) {
			c.eq("uuid", t.UUID, tmpl.UUID)
			c.eq("dns_nameserver", t.DNSNameServer, "1.1.1.1")
			c.eq("http_proxy", t.HTTPProxy, "http://proxy.example:3128")
			c.eq("labels", t.Labels, map[string]string{"gophercloud": "yes", "patched": "true"})
			c.recent("updated_at", t.UpdatedAt)
			c.eq("name", t.Name, "gc-template")
			c.eq("image_id", t.ImageID, imageID)
		}
		got, err := clustertemplates.Get(e.demo, tmpl.UUID).Extract()
		if !c.err("Get after Update", err) {
			c.eq("dns_nameserver after Get", got.DNSNameServer, "1.1.1.1")
			c.eq("labels after Get", got.Labels, map[string]string{"gophercloud": "yes", "patched": "true"})
		}
	}
	c.done()

	c = newCheck("clustertemplates.Update (JSON patch remove /http_proxy): 200 and no proxy")
	if t, err := clustertemplates.Update(e.demo, tmpl.UUID, []clustertemplates.UpdateOptsBuilder{
		clustertemplates.UpdateOpts{Op: clustertemplates.RemoveOp, Path: "/http_proxy"}}).Extract(); !c.err("Update", err) {
		c.eq("http_proxy", t.HTTPProxy, "")
		c.eq("dns_nameserver", t.DNSNameServer, "1.1.1.1")
	}
	c.done()

	c = newCheck("clustertemplates.Update of a read-only field (/uuid): 400")
	ur = clustertemplates.Update(e.demo, tmpl.UUID, []clustertemplates.UpdateOptsBuilder{
		clustertemplates.UpdateOpts{Op: clustertemplates.ReplaceOp, Path: "/uuid", Value: "00000000-0000-4000-8000-000000000000"}})
	if ur.Err == nil {
		c.failf("the uuid was patched")
	} else if !is400(ur.Err) {
		c.failf("got %v, want 400", ur.Err)
	}
	c.done()

	tmpl, _ = clustertemplates.Get(e.demo, tmpl.UUID).Extract()
	return tmpl, extra
}

// checkPaged: every wanted id seen exactly once, nothing seen twice; pages > 0 checks the page count (limit 2).
func checkPaged(c *check, seen map[string]int, want []string, pages, n int) {
	for id, k := range seen {
		if k > 1 {
			c.failf("%s listed %d times", id, k)
		}
	}
	for _, id := range want {
		if seen[id] == 0 {
			c.failf("%s not listed", id)
		}
	}
	if pages >= 0 {
		// n items at 2 a page: ceil(n/2) full-or-partial pages, plus possibly one empty page after a full last one.
		min := (n + 1) / 2
		if pages < min || pages > min+1 {
			c.failf("%d pages for %d items at limit 2", pages, n)
		}
	}
}

func testClusterTemplateDeletes(e *env, ids []string) {
	c := newCheck("clustertemplates.Delete: 204, then Get is 404")
	for _, id := range ids {
		if c.err("Delete "+id, clustertemplates.Delete(e.demo, id).ExtractErr()) {
			continue
		}
		if _, err := clustertemplates.Get(e.demo, id).Extract(); !is404(err) {
			c.failf("Get %s after Delete: %v, want 404", id, err)
		}
	}
	c.done()
}
