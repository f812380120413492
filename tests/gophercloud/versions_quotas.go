package main

import (
	"fmt"

	"github.com/gophercloud/gophercloud/openstack/containerinfra/apiversions"
	"github.com/gophercloud/gophercloud/openstack/containerinfra/v1/quotas"
)

func testAPIVersions(e *env) {
	c := newCheck("apiversions.List: GET / lists v1 with its min and max microversion")
	pages, err := apiversions.List(e.demo).AllPages()
	if !c.err("List", err) {
		vs, err := apiversions.ExtractAPIVersions(pages)
		if !c.err("ExtractAPIVersions", err) {
			if c.truth(len(vs) == 1, "%d versions, want 1: %+v", len(vs), vs); len(vs) == 1 {
				v := vs[0]
				c.eq("id", v.ID, "v1")
				c.eq("status", v.Status, "CURRENT")
				c.eq("min_version", v.MinVersion, "1.1")
				var major, minor int
				if _, err := fmt.Sscanf(v.Version, "%d.%d", &major, &minor); err != nil || major != 1 || minor < 9 {
					c.failf("max_version %q is not 1.x with x >= 9 (node groups need 1.9)", v.Version)
				}
			}
		}
	}
	c.done()

	// apiversions.Get reads GET /v1/ and expects a "versions" list in it, as its unit-test fixture has. Magnum 15's
	// GET /v1/ (magnum/api/controllers/v1/__init__.py, class V1) is the v1 document (id, links, media_types and the
	// resource links) with no "versions" key, so against Magnum gophercloud 0.12's Get returns ErrVersionNotFound.
	// Magnetar serves Magnum's document; this check holds it to that and checks the document itself.
	c = newCheck("apiversions.Get(v1): GET /v1/ is Magnum's v1 document (no versions list, so gophercloud reports ErrVersionNotFound)")
	r := apiversions.Get(e.demo, "v1")
	if !c.err("GET /v1/", r.Err) {
		_, err := r.Extract()
		if _, isNotFound := err.(apiversions.ErrVersionNotFound); !isNotFound {
			c.failf("Extract: got %v, want ErrVersionNotFound as against Magnum", err)
		}
		var doc struct {
			ID         string `json:"id"`
			MediaTypes []struct {
				Base string `json:"base"`
				Type string `json:"type"`
			} `json:"media_types"`
			Links []struct {
				Href string `json:"href"`
				Rel  string `json:"rel"`
			} `json:"links"`
			Clusters  []interface{} `json:"clusters"`
			Templates []interface{} `json:"clustertemplates"`
		}
		if !c.err("ExtractInto", r.ExtractInto(&doc)) {
			c.eq("id", doc.ID, "v1")
			c.truth(len(doc.MediaTypes) == 1 && doc.MediaTypes[0].Type == "application/vnd.openstack.magnum.v1+json", "media_types = %+v", doc.MediaTypes)
			c.truth(len(doc.Links) > 0 && doc.Links[0].Rel == "self", "links = %+v", doc.Links)
			c.truth(len(doc.Clusters) > 0 && len(doc.Templates) > 0, "no clusters/clustertemplates links")
		}
	}
	c.done()
}

func testQuotas(e *env) {
	// gophercloud 0.12's quotas package has Create only.
	c := newCheck("quotas.Create (admin): a Cluster quota for the demo project")
	r := quotas.Create(e.admin, quotas.CreateOpts{ProjectID: e.demoProjectID, Resource: "Cluster", HardLimit: 20})
	if !c.err("Create", r.Err) {
		q, err := r.Extract()
		if !c.err("Extract", err) {
			c.eq("project_id", q.ProjectID, e.demoProjectID)
			c.eq("resource", q.Resource, "Cluster")
			c.eq("hard_limit", q.HardLimit, 20)
			c.nonEmpty("id", q.ID)
			c.recent("created_at", q.CreatedAt)
		}
	}
	c.done()

	c = newCheck("quotas.Create (demo, a member): refused with 403")
	r = quotas.Create(e.demo, quotas.CreateOpts{ProjectID: e.demoProjectID, Resource: "Cluster", HardLimit: 30})
	if r.Err == nil {
		c.failf("a member created a quota")
	} else if !is403(r.Err) {
		c.failf("got %v, want 403", r.Err)
	}
	c.done()

	c = newCheck("quotas.Create again for the same project and resource: 409")
	r = quotas.Create(e.admin, quotas.CreateOpts{ProjectID: e.demoProjectID, Resource: "Cluster", HardLimit: 30})
	if r.Err == nil {
		c.failf("a second quota was created")
	} else if !is409(r.Err) {
		c.failf("got %v, want 409", r.Err)
	}
	c.done()
}
