package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/jackc/pgx/v5"
)

var (
	_ resource.Resource              = (*database)(nil)
	_ resource.ResourceWithConfigure = (*database)(nil)
)

// database is socletest_postgres_database: a PostgreSQL database and the
// role that owns it, which may log in with a password the provider
// generates.
type database struct {
	provider *providerModel
}

func newDatabase() resource.Resource { return &database{} }

type databaseModel struct {
	ID            types.String `tfsdk:"id"`
	Host          types.String `tfsdk:"host"`
	Port          types.Int64  `tfsdk:"port"`
	AdminUser     types.String `tfsdk:"admin_user"`
	AdminPassword types.String `tfsdk:"admin_password"`
	Name          types.String `tfsdk:"name"`
	OwnerRole     types.String `tfsdk:"owner_role"`
	OwnerPassword types.String `tfsdk:"owner_password"`
}

func (r *database) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_postgres_database"
}

func (r *database) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	replace := []planmodifier.String{stringplanmodifier.RequiresReplace()}
	resp.Schema = schema.Schema{
		Description: "A PostgreSQL database and its owner role (LOGIN, generated password). Read checks both exist: one dropped by hand is created again.",
		Attributes: map[string]schema.Attribute{
			"id":             schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			"host":           schema.StringAttribute{Optional: true, Description: "Overrides the provider's host."},
			"port":           schema.Int64Attribute{Optional: true, Description: "Overrides the provider's port."},
			"admin_user":     schema.StringAttribute{Optional: true, Description: "Overrides the provider's admin_user."},
			"admin_password": schema.StringAttribute{Optional: true, Sensitive: true, Description: "Overrides the provider's admin_password."},
			"name":           schema.StringAttribute{Required: true, PlanModifiers: replace},
			"owner_role":     schema.StringAttribute{Required: true, PlanModifiers: replace},
			"owner_password": schema.StringAttribute{
				Computed: true, Sensitive: true,
				Description:   "The owner role's password, generated at create.",
				PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
		},
	}
}

func (r *database) Configure(_ context.Context, req resource.ConfigureRequest, _ *resource.ConfigureResponse) {
	if m, ok := req.ProviderData.(*providerModel); ok {
		r.provider = m
	}
}

// connect opens a connection as the admin role to the server's postgres
// database, with the resource's settings where it has them and the
// provider's elsewhere.
func (r *database) connect(ctx context.Context, m *databaseModel) (*pgx.Conn, error) {
	p := r.provider
	if p == nil {
		p = &providerModel{}
	}
	pick := func(own, prov types.String, def string) string {
		switch {
		case !own.IsNull() && !own.IsUnknown():
			return own.ValueString()
		case !prov.IsNull() && !prov.IsUnknown():
			return prov.ValueString()
		}
		return def
	}
	port := int64(5432)
	switch {
	case !m.Port.IsNull() && !m.Port.IsUnknown():
		port = m.Port.ValueInt64()
	case !p.Port.IsNull() && !p.Port.IsUnknown():
		port = p.Port.ValueInt64()
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.User(pick(m.AdminUser, p.AdminUser, "postgres")),
		Host:     net.JoinHostPort(pick(m.Host, p.Host, "127.0.0.1"), strconv.FormatInt(port, 10)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable&connect_timeout=10",
	}
	if pw := pick(m.AdminPassword, p.AdminPassword, ""); pw != "" {
		u.User = url.UserPassword(u.User.Username(), pw)
	}
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return nil, fmt.Errorf("connecting to %s as %s: %w", u.Host, u.User.Username(), err)
	}
	return conn, nil
}

// open reads the resource's model with get (from the plan or the state)
// and connects as the admin role, reporting a failure of either in diags.
func (r *database) open(ctx context.Context, get func(context.Context, any) diag.Diagnostics, m *databaseModel, diags *diag.Diagnostics) (*pgx.Conn, bool) {
	diags.Append(get(ctx, m)...)
	if diags.HasError() {
		return nil, false
	}
	conn, err := r.connect(ctx, m)
	if err != nil {
		diags.AddError("connecting to PostgreSQL", err.Error())
		return nil, false
	}
	return conn, true
}

func (r *database) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	var m databaseModel
	conn, ok := r.open(ctx, req.Plan.Get, &m, &resp.Diagnostics)
	if !ok {
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	pw, err := password()
	if err != nil {
		resp.Diagnostics.AddError("generating a password", err.Error())
		return
	}
	if err := create(ctx, conn, m.Name.ValueString(), m.OwnerRole.ValueString(), pw); err != nil {
		resp.Diagnostics.AddError("creating the database", err.Error())
		return
	}
	m.ID = m.Name
	m.OwnerPassword = types.StringValue(pw)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// create creates the role, or gives it a new password when it is there
// already (its database was dropped by hand and is being created again),
// then the database.
func create(ctx context.Context, conn *pgx.Conn, name, role, pw string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role).Scan(&exists); err != nil {
		return fmt.Errorf("looking up role %s: %w", role, err)
	}
	// Utility statements take no parameters: the names are quoted as
	// identifiers, the password as a literal.
	verb := "CREATE"
	if exists {
		verb = "ALTER"
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("%s ROLE %s WITH LOGIN PASSWORD %s", verb, ident(role), literal(pw))); err != nil {
		return fmt.Errorf("%s role %s: %w", strings.ToLower(verb), role, err)
	}
	if _, err := conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s OWNER %s", ident(name), ident(role))); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

func (r *database) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m databaseModel
	conn, ok := r.open(ctx, req.State.Get, &m, &resp.Diagnostics)
	if !ok {
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// A database's owner role cannot be dropped before the database: the
	// owner's name is there exactly when both are.
	var owner string
	var login bool
	err := conn.QueryRow(ctx, `SELECT r.rolname, r.rolcanlogin FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba WHERE d.datname = $1`,
		m.Name.ValueString()).Scan(&owner, &login)
	if errors.Is(err, pgx.ErrNoRows) {
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("reading the database", err.Error())
		return
	}
	if !login {
		// Its owner may no longer log in: not what was applied.
		resp.State.RemoveResource(ctx)
		return
	}
	m.OwnerRole = types.StringValue(owner)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

// Update changes only how the provider connects (the name and the owner
// replace the database): nothing to do on the server.
func (r *database) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	var m databaseModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *database) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m databaseModel
	conn, ok := r.open(ctx, req.State.Get, &m, &resp.Diagnostics)
	if !ok {
		return
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// FORCE ends the sessions of the database's users (PostgreSQL 13+).
	for _, q := range []string{
		fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", ident(m.Name.ValueString())),
		fmt.Sprintf("DROP ROLE IF EXISTS %s", ident(m.OwnerRole.ValueString())),
	} {
		if _, err := conn.Exec(ctx, q); err != nil {
			resp.Diagnostics.AddError("dropping the database", err.Error())
			return
		}
	}
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

// literal quotes s as an SQL string (standard_conforming_strings is on
// by default since PostgreSQL 9.1: only quotes are doubled).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func password() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
