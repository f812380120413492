package main

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud"
)

// Results: one line per check, "ok <name>" or "FAIL <name>: <why>", and the counts for the summary line.
var passed, failed int

// check collects the problems of one named check; done prints its line.
type check struct {
	name     string
	problems []string
}

func newCheck(format string, args ...interface{}) *check {
	return &check{name: fmt.Sprintf(format, args...)}
}

func (c *check) failf(format string, args ...interface{}) {
	c.problems = append(c.problems, fmt.Sprintf(format, args...))
}

// err records a non-nil error; it returns true if there was one (the caller then usually stops the check).
func (c *check) err(what string, err error) bool {
	if err == nil {
		return false
	}
	c.failf("%s: %v", what, err)
	return true
}

func (c *check) eq(field string, got, want interface{}) {
	if fmt.Sprint(got) != fmt.Sprint(want) {
		c.failf("%s = %q, want %q", field, fmt.Sprint(got), fmt.Sprint(want))
	}
}

func (c *check) nonEmpty(field, v string) {
	if strings.TrimSpace(v) == "" {
		c.failf("%s is empty", field)
	}
}

func (c *check) truth(cond bool, format string, args ...interface{}) {
	if !cond {
		c.failf(format, args...)
	}
}

var uuidRe = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func (c *check) uuid(field, v string) {
	if !uuidRe.MatchString(v) {
		c.failf("%s = %q is not a UUID", field, v)
	}
}

// projectID: Keystone-style ids are 32 hex digits; the built-in identity may use UUIDs. Either is fine, empty is not.
func (c *check) projectID(field, v string) {
	c.nonEmpty(field, v)
}

// recent: a timestamp the server set within the last hour (gophercloud parses them as RFC 3339).
func (c *check) recent(field string, t time.Time) {
	if t.IsZero() {
		c.failf("%s is not set", field)
		return
	}
	if d := time.Since(t); d > time.Hour || d < -5*time.Minute {
		c.failf("%s = %s is not recent", field, t.Format(time.RFC3339))
	}
}

// links: Magnum's self and bookmark links, both absolute URLs on the endpoint's host, the self one under /v1/ and
// ending in the resource's path.
func (c *check) links(links []gophercloud.Link, endpoint, path string) {
	rels := map[string]string{}
	for _, l := range links {
		rels[l.Rel] = l.Href
	}
	base, _ := url.Parse(endpoint)
	for _, rel := range []string{"self", "bookmark"} {
		href, ok := rels[rel]
		if !ok {
			c.failf("no %s link in %v", rel, links)
			continue
		}
		u, err := url.Parse(href)
		if err != nil || !u.IsAbs() {
			c.failf("%s link %q is not an absolute URL", rel, href)
			continue
		}
		if base != nil && u.Host != base.Host {
			c.failf("%s link %q is not on the endpoint's host %s", rel, href, base.Host)
		}
		if !strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), path) {
			c.failf("%s link %q does not end in %s", rel, href, path)
		}
		if rel == "self" && !strings.HasPrefix(u.Path, "/v1/") {
			c.failf("self link %q is not under /v1/", href)
		}
	}
}

func (c *check) done() bool {
	if len(c.problems) == 0 {
		passed++
		fmt.Printf("ok %s\n", c.name)
		return true
	}
	failed++
	fmt.Printf("FAIL %s: %s\n", c.name, strings.Join(c.problems, "; "))
	return false
}

// waitFor polls f every interval until it returns true or an error, or the timeout passes.
func waitFor(timeout time.Duration, f func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		done, err := f()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// status is the HTTP status of a gophercloud error (its ErrDefault4xx types and ErrUnexpectedResponseCode carry it),
// 0 for any other error.
func status(err error) int {
	if e, ok := err.(gophercloud.StatusCodeError); ok {
		return e.GetStatusCode()
	}
	return 0
}

func is400(err error) bool { return status(err) == 400 }
func is403(err error) bool { return status(err) == 403 }
func is404(err error) bool { return status(err) == 404 }
func is409(err error) bool { return status(err) == 409 }
