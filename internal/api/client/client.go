// Package client is the Go client of socle's REST API, used by the CLI, the
// portal and the tests: one place that knows how to authenticate, encode
// requests and turn error answers into Go errors.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/socle-dev/socle/internal/api"
)

// Client calls one socle server as one user.
type Client struct {
	// BaseURL is the server, e.g. http://127.0.0.1:7070.
	BaseURL string
	// Token is sent as a bearer token; empty sends none.
	Token string
	// HTTP is the client used; nil means http.DefaultClient.
	HTTP *http.Client
}

// New returns a client of the server at base acting with token.
func New(base, token string) *Client {
	return &Client{BaseURL: strings.TrimRight(base, "/"), Token: token}
}

// Error is an error answer of the API.
type Error struct {
	Status int
	api.ErrorBody
}

func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Message
}

// Request sends a request and returns the answer as it is: for streams.
// An error answer comes back as *Error.
func (c *Client) Request(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		e := &Error{Status: resp.StatusCode}
		var wrapped api.Error
		if json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&wrapped) == nil {
			e.ErrorBody = wrapped.Error
		}
		return nil, e
	}
	return resp, nil
}

// Do sends a request with a JSON body (nil: none) and decodes the JSON
// answer into out (nil: discard).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.Request(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// Get is Do with GET.
func (c *Client) Get(ctx context.Context, path string, out any) error {
	return c.Do(ctx, http.MethodGet, path, nil, out)
}

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }

// Me returns the caller.
func (c *Client) Me(ctx context.Context) (api.Me, error) {
	var v api.Me
	return v, c.Get(ctx, "/api/v1/me", &v)
}

// Platform returns the platform in force.
func (c *Client) Platform(ctx context.Context) (api.Platform, error) {
	var v api.Platform
	return v, c.Get(ctx, "/api/v1/platform", &v)
}

// Apps returns every app (the environment matrix), reading every page;
// query may hold team and zone.
func (c *Client) Apps(ctx context.Context, query url.Values) ([]api.App, error) {
	var all []api.App
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	q.Set("limit", "1000")
	for {
		var page api.Page[api.App]
		if err := c.Get(ctx, "/api/v1/apps?"+q.Encode(), &page); err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.Next == "" {
			return all, nil
		}
		q.Set("cursor", page.Next)
	}
}

// App returns an app's detail.
func (c *Client) App(ctx context.Context, app string) (api.AppDetail, error) {
	var v api.AppDetail
	return v, c.Get(ctx, "/api/v1/apps/"+esc(app), &v)
}

// Releases returns up to limit releases of app in env, newest first.
func (c *Client) Releases(ctx context.Context, app, env string, limit int) ([]api.Release, error) {
	var page api.Page[api.Release]
	err := c.Get(ctx, fmt.Sprintf("/api/v1/apps/%s/envs/%s/releases?limit=%d", esc(app), esc(env), limit), &page)
	return page.Items, err
}

// Preview asks what an action would do.
func (c *Client) Preview(ctx context.Context, action, app, env string) (api.Preview, error) {
	var v api.Preview
	return v, c.Get(ctx, fmt.Sprintf("/api/v1/apps/%s/envs/%s/preview?action=%s", esc(app), esc(env), url.QueryEscape(action)), &v)
}

// Deploy deploys a revision ("" for the newest) of app to env.
func (c *Client) Deploy(ctx context.Context, app, env, revision, message string) (api.ActionResult, error) {
	return c.DeployRequest(ctx, app, env, api.ActionRequest{Revision: revision, Message: message})
}

// DeployRequest deploys app to env as req says (an emergency change, say).
func (c *Client) DeployRequest(ctx context.Context, app, env string, req api.ActionRequest) (api.ActionResult, error) {
	var v api.ActionResult
	return v, c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/apps/%s/envs/%s/deploy", esc(app), esc(env)), req, &v)
}

// Promote promotes app to env.
func (c *Client) Promote(ctx context.Context, app, env, message string) (api.ActionResult, error) {
	return c.PromoteRequest(ctx, app, api.ActionRequest{To: env, Message: message})
}

// PromoteRequest promotes app to req.To as req says (an emergency change,
// say).
func (c *Client) PromoteRequest(ctx context.Context, app string, req api.ActionRequest) (api.ActionResult, error) {
	var v api.ActionResult
	return v, c.Do(ctx, http.MethodPost, "/api/v1/apps/"+esc(app)+"/promote", req, &v)
}

// Approve approves what a promotion of app to env would bring.
func (c *Client) Approve(ctx context.Context, app, env, message string) (api.Approval, error) {
	var v api.Approval
	return v, c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/apps/%s/envs/%s/approvals", esc(app), esc(env)), api.ActionRequest{Message: message}, &v)
}

// Rollback restores release (0: the previous one) of app in env.
func (c *Client) Rollback(ctx context.Context, app, env string, release int64, message string) (api.ActionResult, error) {
	return c.RollbackRequest(ctx, app, env, api.ActionRequest{Release: release, Message: message})
}

// RollbackRequest restores req.Release of app in env as req says (an
// emergency change, say).
func (c *Client) RollbackRequest(ctx context.Context, app, env string, req api.ActionRequest) (api.ActionResult, error) {
	var v api.ActionResult
	return v, c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/apps/%s/envs/%s/rollback", esc(app), esc(env)), req, &v)
}

// Tokens lists tokens (of user, for an admin; "" for all they may see).
func (c *Client) Tokens(ctx context.Context, user string) ([]api.Token, error) {
	var page api.Page[api.Token]
	err := c.Get(ctx, "/api/v1/tokens?user="+url.QueryEscape(user), &page)
	return page.Items, err
}

// CreateToken creates a token for a user.
func (c *Client) CreateToken(ctx context.Context, req api.NewToken) (api.CreatedToken, error) {
	var v api.CreatedToken
	return v, c.Do(ctx, http.MethodPost, "/api/v1/tokens", req, &v)
}

// RevokeToken revokes a token by ID.
func (c *Client) RevokeToken(ctx context.Context, id string) (api.Token, error) {
	var v api.Token
	return v, c.Do(ctx, http.MethodDelete, "/api/v1/tokens/"+esc(id), nil, &v)
}

// Resources lists the resources socle provisions: those of env only unless
// env is "", and those app uses or used only unless app is "".
func (c *Client) Resources(ctx context.Context, env, app string) (api.ResourceList, error) {
	var v api.ResourceList
	return v, c.Get(ctx, withQuery("/api/v1/resources", "env", env, "app", app), &v)
}

// Resource returns resource name of env.
func (c *Client) Resource(ctx context.Context, env, name string) (api.Resource, error) {
	var v api.Resource
	return v, c.Get(ctx, fmt.Sprintf("/api/v1/resources/%s/%s", esc(env), esc(name)), &v)
}

// DeleteResource deletes a resource removed from Git that socle keeps
// (an admin's): its driver deprovisions it, with its data. It returns the
// resource as it was.
func (c *Client) DeleteResource(ctx context.Context, env, name string) (api.Resource, error) {
	var v api.Resource
	return v, c.Do(ctx, http.MethodDelete, fmt.Sprintf("/api/v1/resources/%s/%s", esc(env), esc(name)), nil, &v)
}

// Stacks lists every instance of every infrastructure stack.
func (c *Client) Stacks(ctx context.Context) (api.StackList, error) {
	var v api.StackList
	return v, c.Get(ctx, "/api/v1/stacks", &v)
}

// Stack returns one instance of a stack, with its last plan and outputs.
func (c *Client) Stack(ctx context.Context, stack, instance string) (api.StackDetail, error) {
	var v api.StackDetail
	return v, c.Get(ctx, fmt.Sprintf("/api/v1/stacks/%s/%s", esc(stack), esc(instance)), &v)
}

// StackLogs lists the run logs kept of a stack instance, newest first.
func (c *Client) StackLogs(ctx context.Context, stack, instance string) (api.StackLogList, error) {
	var v api.StackLogList
	return v, c.Get(ctx, fmt.Sprintf("/api/v1/stacks/%s/%s/logs", esc(stack), esc(instance)), &v)
}

// StackLog opens one run log of a stack instance ("latest": the newest)
// as plain text, a line per line; with follow, a running log goes on
// until its run ends. The caller closes it.
func (c *Client) StackLog(ctx context.Context, stack, instance, name string, follow bool) (io.ReadCloser, error) {
	resp, err := c.Request(ctx, http.MethodGet, fmt.Sprintf("/api/v1/stacks/%s/%s/logs/%s?follow=%t", esc(stack), esc(instance), esc(name), follow), nil, nil)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// StackApprovals returns the approvals of plan ("": the current plan) of
// a stack instance.
func (c *Client) StackApprovals(ctx context.Context, stack, instance, plan string) (api.StackApprovalList, error) {
	var v api.StackApprovalList
	path := fmt.Sprintf("/api/v1/stacks/%s/%s/approvals", esc(stack), esc(instance))
	if plan != "" {
		path += "?plan=" + url.QueryEscape(plan)
	}
	return v, c.Get(ctx, path, &v)
}

// ApproveStack approves plan, the current plan of a stack instance.
func (c *Client) ApproveStack(ctx context.Context, stack, instance, plan, comment string) (api.StackApproval, error) {
	var v api.StackApproval
	return v, c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/stacks/%s/%s/approvals", esc(stack), esc(instance)), api.StackApprovalRequest{Plan: plan, Comment: comment}, &v)
}

// UnlockStack removes the run lock of a stack instance; force takes it
// from a live holder.
func (c *Client) UnlockStack(ctx context.Context, stack, instance string, force bool) (api.StackUnlock, error) {
	var v api.StackUnlock
	return v, c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/stacks/%s/%s/unlock", esc(stack), esc(instance)), api.StackUnlockRequest{Force: force}, &v)
}

// Secrets lists the secret files of the platform repository (names, never
// values): those of app only unless app is "", and those that give values
// in env only unless env is "".
func (c *Client) Secrets(ctx context.Context, app, env string) (api.SecretList, error) {
	var v api.SecretList
	return v, c.Get(ctx, withQuery("/api/v1/secrets", "app", app, "env", env), &v)
}

// withQuery adds to path the query parameters of kv (name, value, …) whose
// value is not empty.
func withQuery(path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	if len(q) == 0 {
		return path
	}
	return path + "?" + q.Encode()
}

// SetSecret sets the value of app's secret name in env, as a commit of its
// SOPS file; envOnly writes the environment's own file even when the value
// comes from its zone's.
func (c *Client) SetSecret(ctx context.Context, app, name, env string, envOnly bool, value string) (api.SecretChange, error) {
	var v api.SecretChange
	q := url.Values{"env": {env}}
	if envOnly {
		q.Set("scope", "env")
	}
	return v, c.Do(ctx, http.MethodPut, fmt.Sprintf("/api/v1/apps/%s/secrets/%s?%s", esc(app), esc(name), q.Encode()), api.SecretValue{Value: value}, &v)
}

// RotateSecrets re-encrypts the secret files req names for their current
// recipients with a new data key, as one commit.
func (c *Client) RotateSecrets(ctx context.Context, req api.SecretRotateRequest) (api.SecretChange, error) {
	var v api.SecretChange
	return v, c.Do(ctx, http.MethodPost, "/api/v1/secrets/rotate", req, &v)
}

// Signals returns an app's golden signals over period (a duration such as
// "1h"; "": the server's default) in env, or in every environment when env
// is empty.
func (c *Client) Signals(ctx context.Context, app, env, period string) (api.AppSignals, error) {
	q := url.Values{}
	if env != "" {
		q.Set("env", env)
	}
	if period != "" {
		q.Set("period", period)
	}
	var v api.AppSignals
	return v, c.Get(ctx, fmt.Sprintf("/api/v1/apps/%s/signals?%s", esc(app), q.Encode()), &v)
}

// pausePath is the path of the pause of app in env, or of env when app is
// "".
func pausePath(app, env string) string {
	if app == "" {
		return fmt.Sprintf("/api/v1/envs/%s/pause", esc(env))
	}
	return fmt.Sprintf("/api/v1/apps/%s/envs/%s/pause", esc(app), esc(env))
}

// Pause puts app in env (or the whole of env, when app is "") in
// maintenance mode.
func (c *Client) Pause(ctx context.Context, app, env string, req api.PauseRequest) (api.Pause, error) {
	var v api.Pause
	return v, c.Do(ctx, http.MethodPut, pausePath(app, env), req, &v)
}

// Resume takes app in env (or env, when app is "") out of maintenance
// mode, and returns the pause as it was.
func (c *Client) Resume(ctx context.Context, app, env string) (api.Pause, error) {
	var v api.Pause
	return v, c.Do(ctx, http.MethodDelete, pausePath(app, env), nil, &v)
}

// Pauses lists the apps and environments in maintenance mode.
func (c *Client) Pauses(ctx context.Context) ([]api.Pause, error) {
	var v api.PauseList
	return v.Items, c.Get(ctx, "/api/v1/pauses", &v)
}

// CreateApp creates an app from a template (or, with req.DryRun, shows
// what it would create).
func (c *Client) CreateApp(ctx context.Context, req api.NewApp) (api.NewAppResult, error) {
	var v api.NewAppResult
	return v, c.Do(ctx, http.MethodPost, "/api/v1/apps", req, &v)
}

// Templates lists the templates and the apps made from each.
func (c *Client) Templates(ctx context.Context) (api.TemplateList, error) {
	var v api.TemplateList
	return v, c.Do(ctx, http.MethodGet, "/api/v1/templates", nil, &v)
}

// UpgradeApp brings an app up to its template's current version.
func (c *Client) UpgradeApp(ctx context.Context, app string, req api.TemplateUpgradeRequest) (api.TemplateUpgrade, error) {
	var v api.TemplateUpgrade
	return v, c.Do(ctx, http.MethodPost, fmt.Sprintf("/api/v1/apps/%s/template/upgrade", esc(app)), req, &v)
}
