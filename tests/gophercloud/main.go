// Command gophercloud exercises every containerinfra call of gophercloud 0.12 (Debian's golang-github-gophercloud-
// gophercloud-dev) against a running Magnetar: cluster templates, clusters, certificates, node groups, quotas and API
// versions. It authenticates from the OS_* environment (the admin openrc); DEMO_OS_USERNAME, DEMO_OS_PASSWORD and
// DEMO_OS_PROJECT_NAME name a member account that owns the clusters. One line per check, "ok <name>" or
// "FAIL <name>: <why>", then "N passed, M failed"; the exit status is non-zero if a check failed.
//
// gophercloud sends no OpenStack-API-Version header unless ServiceClient.Microversion is set; it is set here only
// where Magnum requires one: 1.7 for resize, 1.9 for node groups. Everything else goes at the default (1.1).
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/gophercloud/gophercloud"
	"github.com/gophercloud/gophercloud/openstack"
	"github.com/gophercloud/gophercloud/openstack/identity/v3/tokens"
)

func main() {
	start := time.Now()
	code := run()
	fmt.Printf("(%.1fs)\n", time.Since(start).Seconds())
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if code != 0 || failed > 0 {
		os.Exit(1)
	}
}

// env holds the clients and what the checks share.
type env struct {
	admin, demo   *gophercloud.ServiceClient
	demoProjectID string
	demoUserID    string
}

// withMicroversion returns a copy of c that sends "OpenStack-API-Version: container-infra <v>".
func withMicroversion(c *gophercloud.ServiceClient, v string) *gophercloud.ServiceClient {
	cc := *c
	cc.Microversion = v
	return &cc
}

func authenticate(name string, opts gophercloud.AuthOptions) (*gophercloud.ServiceClient, *tokens.Project, *tokens.User, bool) {
	c := newCheck("auth %s: openstack.AuthenticatedClient and the container-infra endpoint from the catalog", name)
	opts.AllowReauth = true
	provider, err := openstack.AuthenticatedClient(opts)
	if c.err("AuthenticatedClient", err) {
		c.done()
		return nil, nil, nil, false
	}
	var project *tokens.Project
	var user *tokens.User
	if r, ok := provider.GetAuthResult().(tokens.CreateResult); ok {
		project, err = r.ExtractProject()
		c.err("token project", err)
		user, err = r.ExtractUser()
		c.err("token user", err)
	} else {
		c.failf("auth result is %T, not a v3 token", provider.GetAuthResult())
	}
	if project == nil || project.ID == "" {
		c.failf("token has no project")
	}
	client, err := openstack.NewContainerInfraV1(provider, gophercloud.EndpointOpts{Region: os.Getenv("OS_REGION_NAME")})
	if c.err("NewContainerInfraV1", err) {
		c.done()
		return nil, nil, nil, false
	}
	c.nonEmpty("endpoint", client.Endpoint)
	c.eq("client type", client.Type, "container-infra")
	c.eq("client microversion", client.Microversion, "")
	return client, project, user, c.done() && project != nil && user != nil
}

func run() int {
	// gophercloud 0.12 reads the domain from OS_DOMAIN_NAME only (for the user and the project); openrc files name it
	// OS_USER_DOMAIN_NAME.
	if os.Getenv("OS_DOMAIN_NAME") == "" && os.Getenv("OS_DOMAIN_ID") == "" {
		os.Setenv("OS_DOMAIN_NAME", os.Getenv("OS_USER_DOMAIN_NAME"))
	}
	adminOpts, err := openstack.AuthOptionsFromEnv()
	if err != nil {
		fmt.Printf("FAIL environment: %v\n", err)
		failed++
		return 1
	}
	demoOpts := adminOpts
	demoOpts.Username = os.Getenv("DEMO_OS_USERNAME")
	demoOpts.Password = os.Getenv("DEMO_OS_PASSWORD")
	demoOpts.TenantName = os.Getenv("DEMO_OS_PROJECT_NAME")
	demoOpts.TenantID = ""
	if demoOpts.Username == "" || demoOpts.Password == "" || demoOpts.TenantName == "" {
		fmt.Println("FAIL environment: DEMO_OS_USERNAME, DEMO_OS_PASSWORD and DEMO_OS_PROJECT_NAME are required")
		failed++
		return 1
	}

	var e env
	var ok bool
	if e.admin, _, _, ok = authenticate("admin", adminOpts); !ok {
		return 1
	}
	var project *tokens.Project
	var user *tokens.User
	if e.demo, project, user, ok = authenticate("demo", demoOpts); !ok {
		return 1
	}
	e.demoProjectID, e.demoUserID = project.ID, user.ID

	testAPIVersions(&e)
	testQuotas(&e)
	tmpl, extraTemplates := testClusterTemplates(&e)
	if tmpl == nil {
		return 1
	}
	cluster, extraClusters := testClusters(&e, tmpl)
	if cluster != "" {
		testCertificates(&e, cluster)
		testNodeGroups(&e, cluster)
		testClusterResize(&e, cluster)
	}
	testClusterDeletes(&e, append([]string{cluster}, extraClusters...))
	testClusterTemplateDeletes(&e, append([]string{tmpl.UUID}, extraTemplates...))
	return 0
}
