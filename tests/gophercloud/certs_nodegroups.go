package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud"
	"github.com/gophercloud/gophercloud/openstack/containerinfra/v1/certificates"
	"github.com/gophercloud/gophercloud/openstack/containerinfra/v1/clusters"
	"github.com/gophercloud/gophercloud/openstack/containerinfra/v1/nodegroups"
	"github.com/gophercloud/gophercloud/pagination"
)

func parseCert(c *check, what, s string) *x509.Certificate {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		c.failf("%s is not a PEM certificate: %.60q", what, s)
		return nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if c.err("parse "+what, err) {
		return nil
	}
	return cert
}

func getCA(c *check, client *gophercloud.ServiceClient, cluster string) *x509.Certificate {
	got, err := certificates.Get(client, cluster).Extract()
	if c.err("certificates.Get", err) {
		return nil
	}
	c.eq("cluster_uuid", got.ClusterUUID, cluster)
	c.eq("bay_uuid", got.BayUUID, cluster)
	c.links(got.Links, client.Endpoint, "/certificates/"+cluster)
	ca := parseCert(c, "the CA pem", got.PEM)
	if ca != nil {
		c.truth(ca.IsCA, "the CA certificate is not a CA (basicConstraints)")
		c.truth(time.Now().Before(ca.NotAfter) && time.Now().After(ca.NotBefore.Add(-5*time.Minute)), "the CA is not valid now (%s to %s)", ca.NotBefore, ca.NotAfter)
	}
	return ca
}

func newCSR(c *check, cn string) string {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if c.err("key", err) {
		return ""
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: cn}}, key)
	if c.err("CSR", err) {
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func testCertificates(e *env, cluster string) {
	c := newCheck("certificates.Get: the cluster's CA certificate")
	ca := getCA(c, e.demo, cluster)
	c.done()

	for _, viaBay := range []bool{false, true} {
		field := "cluster_uuid"
		if viaBay {
			field = "bay_uuid"
		}
		c = newCheck("certificates.Create (%s and a CSR made with crypto/x509): 201, a client certificate signed by the CA", field)
		csr := newCSR(c, "gophercloud-"+field)
		opts := certificates.CreateOpts{ClusterUUID: cluster, CSR: csr}
		if viaBay {
			opts = certificates.CreateOpts{BayUUID: cluster, CSR: csr}
		}
		if got, err := certificates.Create(e.demo, opts).Extract(); csr != "" && !c.err("Create", err) {
			c.eq("cluster_uuid", got.ClusterUUID, cluster)
			c.eq("csr", got.CSR, csr)
			c.links(got.Links, e.demo.Endpoint, "/certificates/"+cluster)
			if cert := parseCert(c, "the signed pem", got.PEM); cert != nil && ca != nil {
				c.err("signature by the CA", cert.CheckSignatureFrom(ca))
				c.truth(!cert.IsCA, "the client certificate is a CA")
				usage := false
				for _, u := range cert.ExtKeyUsage {
					usage = usage || u == x509.ExtKeyUsageClientAuth
				}
				c.truth(usage, "no clientAuth extended key usage")
			}
		}
		c.done()
	}

	c = newCheck("certificates.Create with a CSR that is not one: 400")
	if _, err := certificates.Create(e.demo, certificates.CreateOpts{ClusterUUID: cluster, CSR: "not a CSR"}).Extract(); !is400(err) {
		c.failf("got %v, want 400", err)
	}
	c.done()

	c = newCheck("certificates.Create for an unknown cluster: 400 (Magnum's Certificate.cluster_uuid setter turns the 404 into a 400)")
	if csr := newCSR(c, "nobody"); csr != "" {
		if _, err := certificates.Create(e.demo, certificates.CreateOpts{ClusterUUID: "00000000-0000-4000-8000-000000000000", CSR: csr}).Extract(); !is400(err) {
			c.failf("got %v, want 400", err)
		}
	}
	c.done()

	c = newCheck("certificates.Get for an unknown cluster: 404")
	if _, err := certificates.Get(e.demo, "00000000-0000-4000-8000-000000000000").Extract(); !is404(err) {
		c.failf("got %v, want 404", err)
	}
	c.done()

	c = newCheck("certificates.Update (CA rotation): 202, UPDATE_IN_PROGRESS, then UPDATE_COMPLETE with a new CA")
	if !c.err("Update", certificates.Update(e.demo, cluster).ExtractErr()) {
		if cl, ok := waitStatus(c, e.demo, cluster, "UPDATE_COMPLETE"); ok {
			c.nonEmpty("status_reason", cl.StatusReason)
			if newCA := getCA(c, e.demo, cluster); newCA != nil && ca != nil {
				c.truth(!newCA.Equal(ca), "the CA did not change")
			}
		}
	}
	c.done()
}

func checkNodeGroup(c *check, e *env, ng *nodegroups.NodeGroup, cluster string) {
	c.uuid("uuid", ng.UUID)
	c.nonEmpty("name", ng.Name)
	c.eq("cluster_id", ng.ClusterID, cluster)
	c.eq("project_id", ng.ProjectID, e.demoProjectID)
	c.eq("flavor_id", ng.FlavorID, flavorID)
	c.eq("image_id", ng.ImageID, imageID)
	c.nonEmpty("status", ng.Status)
	c.truth(ng.Role == "master" || ng.Role == "worker" || ng.Role == "gophercloud", "role = %q", ng.Role)
	c.recent("created_at", ng.CreatedAt)
	c.links(ng.Links, e.demo.Endpoint, "/clusters/"+cluster+"/nodegroups/"+ng.UUID)
}

// checkNodeGroupSummary: Magnum's get_all shows only uuid, name, flavor_id, node_count, role, is_default, image_id,
// status and stack_id (NodeGroup.convert, expand=False).
func checkNodeGroupSummary(c *check, ng *nodegroups.NodeGroup) {
	c.uuid("uuid", ng.UUID)
	c.nonEmpty("name", ng.Name)
	c.eq("flavor_id", ng.FlavorID, flavorID)
	c.eq("image_id", ng.ImageID, imageID)
	c.nonEmpty("status", ng.Status)
	c.truth(ng.Role == "master" || ng.Role == "worker" || ng.Role == "gophercloud", "role = %q", ng.Role)
	c.truth(ng.ClusterID == "" && ng.ProjectID == "" && len(ng.Links) == 0 && ng.CreatedAt.IsZero(),
		"list shows detail fields (cluster_id %q, project_id %q, links %v, created_at %s)", ng.ClusterID, ng.ProjectID, ng.Links, ng.CreatedAt)
}

func waitNodeGroup(c *check, client *gophercloud.ServiceClient, cluster, id, want string) (*nodegroups.NodeGroup, bool) {
	return waitSettled(c, want, func() (*nodegroups.NodeGroup, string, string, error) {
		ng, err := nodegroups.Get(client, cluster, id).Extract()
		if err != nil {
			return nil, "", "", err
		}
		return ng, ng.Status, ng.StatusReason, nil
	})
}

func testNodeGroups(e *env, cluster string) {
	v19 := withMicroversion(e.demo, "1.9")

	c := newCheck("nodegroups.List with no microversion header: 406 (node groups need 1.9)")
	if _, err := nodegroups.List(e.demo, cluster, nil).AllPages(); err == nil {
		c.failf("listed at the default microversion")
	} else if ue, ok := err.(gophercloud.ErrUnexpectedResponseCode); !ok || ue.Actual != 406 {
		c.failf("got %v, want 406", err)
	}
	c.done()

	c = newCheck("nodegroups.List at 1.9: the two default node groups")
	byRole := map[string]nodegroups.NodeGroup{}
	if pages, err := nodegroups.List(v19, cluster, nil).AllPages(); !c.err("List", err) {
		ngs, err := nodegroups.ExtractNodeGroups(pages)
		if !c.err("Extract", err) {
			c.eq("count", len(ngs), 2)
			for i := range ngs {
				checkNodeGroupSummary(c, &ngs[i])
				c.truth(ngs[i].IsDefault, "%s is not is_default", ngs[i].Name)
				byRole[ngs[i].Role] = ngs[i]
			}
			c.eq("default-master", byRole["master"].Name, "default-master")
			c.eq("default-worker", byRole["worker"].Name, "default-worker")
			c.eq("master node_count", byRole["master"].NodeCount, 1)
			c.eq("worker node_count", byRole["worker"].NodeCount, 2)
		}
	}
	c.done()

	c = newCheck("nodegroups.List at 1.9 role=worker: just default-worker")
	if pages, err := nodegroups.List(v19, cluster, nodegroups.ListOpts{Role: "worker"}).AllPages(); !c.err("List", err) {
		ngs, err := nodegroups.ExtractNodeGroups(pages)
		c.eq("count", len(ngs), 1)
		if !c.err("Extract", err) && len(ngs) == 1 {
			c.eq("name", ngs[0].Name, "default-worker")
		}
	}
	c.done()

	c = newCheck("nodegroups.Get at 1.9 by uuid and by name")
	for _, ident := range []string{byRole["worker"].UUID, "default-worker"} {
		if ng, err := nodegroups.Get(v19, cluster, ident).Extract(); !c.err("Get "+ident, err) {
			checkNodeGroup(c, e, ng, cluster)
			c.eq("uuid", ng.UUID, byRole["worker"].UUID)
			c.eq("role", ng.Role, "worker")
			c.eq("status", ng.Status, "UPDATE_COMPLETE")
			c.eq("node_count", ng.NodeCount, 2)
			c.eq("len(node_addresses)", len(ng.NodeAddresses), 2)
		}
	}
	c.done()

	c = newCheck("nodegroups.Create at 1.9: 202 and the node group as asked, then CREATE_COMPLETE")
	var id string
	r := nodegroups.Create(v19, cluster, nodegroups.CreateOpts{
		Name: "gc-ng", NodeCount: intp(2), MinNodeCount: 1, MaxNodeCount: intp(4), Role: "gophercloud",
		Labels: map[string]string{"ng": "yes"}, DockerVolumeSize: intp(5),
	})
	if !c.err("Create", r.Err) {
		if ng, err := r.Extract(); !c.err("Extract", err) {
			checkNodeGroup(c, e, ng, cluster)
			id = ng.UUID
			c.eq("name", ng.Name, "gc-ng")
			c.eq("role", ng.Role, "gophercloud")
			c.eq("node_count", ng.NodeCount, 2)
			c.eq("min_node_count", ng.MinNodeCount, 1)
			c.truth(ng.MaxNodeCount != nil && *ng.MaxNodeCount == 4, "max_node_count = %v, want 4", ng.MaxNodeCount)
			c.eq("is_default", ng.IsDefault, false)
			c.eq("labels[ng]", ng.Labels["ng"], "yes")
			c.truth(ng.DockerVolumeSize != nil && *ng.DockerVolumeSize == 5, "docker_volume_size = %v, want 5", ng.DockerVolumeSize)
			// Magnum answers with the object before its conductor sets a status (null); Magnetar with the status.
			c.truth(ng.Status == "" || ng.Status == "CREATE_IN_PROGRESS", "status = %q", ng.Status)
			if ng, ok := waitNodeGroup(c, v19, cluster, id, "CREATE_COMPLETE"); ok {
				checkNodeGroup(c, e, ng, cluster)
				c.eq("len(node_addresses)", len(ng.NodeAddresses), 2)
				c.nonEmpty("version", ng.Version)
				c.truth(ng.ID > 0, "id = %d", ng.ID)
			}
		}
	}
	c.done()
	if id == "" {
		return
	}

	c = newCheck("nodegroups.List at 1.9 limit=1: every page walked, each node group once")
	seen := map[string]int{}
	pages := 0
	err := nodegroups.List(v19, cluster, nodegroups.ListOpts{Limit: 1}).EachPage(func(p pagination.Page) (bool, error) {
		pages++
		ngs, err := nodegroups.ExtractNodeGroups(p)
		for i := range ngs {
			seen[ngs[i].UUID]++
			checkNodeGroupSummary(c, &ngs[i])
		}
		return pages < 10, err
	})
	c.err("EachPage", err)
	for u, k := range seen {
		c.truth(k == 1, "%s listed %d times", u, k)
	}
	c.eq("node groups seen", len(seen), 3)
	c.truth(pages == 3 || pages == 4, "%d pages for 3 node groups at limit 1", pages)
	c.done()

	c = newCheck("nodegroups.Create at 1.9 of a master node group: 400 (Magnum's CreateMasterNodeGroup)")
	if _, err := nodegroups.Create(v19, cluster, nodegroups.CreateOpts{Name: "gc-masters", Role: "master"}).Extract(); !is400(err) {
		c.failf("got %v, want 400", err)
	}
	c.done()

	c = newCheck("nodegroups.Create at 1.9 with a name in use: 409")
	if _, err := nodegroups.Create(v19, cluster, nodegroups.CreateOpts{Name: "gc-ng"}).Extract(); !is409(err) {
		c.failf("got %v, want 409", err)
	}
	c.done()

	for _, step := range []struct {
		patch    []nodegroups.UpdateOpts
		min, max int
	}{
		{[]nodegroups.UpdateOpts{{Op: nodegroups.ReplaceOp, Path: "/min_node_count", Value: 2}}, 2, 4},
		{[]nodegroups.UpdateOpts{{Op: nodegroups.ReplaceOp, Path: "/max_node_count", Value: 5}}, 2, 5},
		{[]nodegroups.UpdateOpts{{Op: nodegroups.ReplaceOp, Path: "/min_node_count", Value: 1}, {Op: nodegroups.ReplaceOp, Path: "/max_node_count", Value: 3}}, 1, 3},
	} {
		patch := step.patch
		want := map[string]int{"/min_node_count": step.min, "/max_node_count": step.max}
		var ops []nodegroups.UpdateOptsBuilder
		var desc []string
		for _, p := range patch {
			ops = append(ops, p)
			desc = append(desc, fmt.Sprintf("%s %v", p.Path, p.Value))
		}
		c = newCheck("nodegroups.Update at 1.9 (%s): 202 and the node group as patched", strings.Join(desc, ", "))
		if ng, err := nodegroups.Update(v19, cluster, id, ops).Extract(); !c.err("Update", err) {
			c.eq("uuid", ng.UUID, id)
			c.eq("min_node_count", ng.MinNodeCount, want["/min_node_count"])
			c.truth(ng.MaxNodeCount != nil && *ng.MaxNodeCount == want["/max_node_count"], "max_node_count = %v, want %d", ng.MaxNodeCount, want["/max_node_count"])
			// Magnum's conductor runs a stack update for any node group patch (UPDATE_IN_PROGRESS, UPDATE_COMPLETE);
			// Magnetar changes only the autoscaling bounds, which need no cloud change, and keeps the status.
			if ng, err := nodegroups.Get(v19, cluster, id).Extract(); !c.err("Get", err) {
				c.truth(ng.Status == "UPDATE_COMPLETE" || ng.Status == "CREATE_COMPLETE" || ng.Status == "UPDATE_IN_PROGRESS", "status %s", ng.Status)
				c.eq("node_count", ng.NodeCount, 2)
				c.eq("min_node_count after Get", ng.MinNodeCount, want["/min_node_count"])
			}
		}
		c.done()
	}

	c = newCheck("nodegroups.Update at 1.9 of /min_node_count above node_count: 409 (Magnum's NodeGroupInvalidInput is a Conflict)")
	if _, err := nodegroups.Update(v19, cluster, id, []nodegroups.UpdateOptsBuilder{
		nodegroups.UpdateOpts{Op: nodegroups.ReplaceOp, Path: "/min_node_count", Value: 9}}).Extract(); !is409(err) {
		c.failf("got %v, want 409", err)
	}
	c.done()

	c = newCheck("clusters.Get: node_count counts the new node group's nodes")
	if cl, err := clusters.Get(e.demo, cluster).Extract(); !c.err("Get", err) {
		c.eq("node_count", cl.NodeCount, 4)
	}
	c.done()

	c = newCheck("nodegroups.Delete at 1.9: 204, then Get is 404")
	if !c.err("Delete", nodegroups.Delete(v19, cluster, id).ExtractErr()) {
		err := waitFor(90*time.Second, func() (bool, error) {
			_, err := nodegroups.Get(v19, cluster, id).Extract()
			if is404(err) {
				return true, nil
			}
			return false, err
		})
		c.err("waiting for 404", err)
	}
	c.done()

	c = newCheck("nodegroups.Delete at 1.9 of a default node group: 400")
	if err := nodegroups.Delete(v19, cluster, "default-worker").ExtractErr(); !is400(err) {
		c.failf("got %v, want 400", err)
	}
	c.done()

	c = newCheck("clusters.Get after the node group's deletion: UPDATE_COMPLETE, 2 nodes")
	if cl, err := clusters.Get(e.demo, cluster).Extract(); !c.err("Get", err) {
		c.eq("node_count", cl.NodeCount, 2)
		c.truth(!strings.HasSuffix(cl.Status, "_IN_PROGRESS"), "status %s", cl.Status)
	}
	c.done()
}
