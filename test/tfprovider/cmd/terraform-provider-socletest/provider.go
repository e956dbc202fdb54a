package main

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var _ provider.Provider = (*socletest)(nil)

type socletest struct{}

func newProvider() provider.Provider { return &socletest{} }

// providerModel is the provider block: the PostgreSQL server the
// database resources use unless they name their own.
type providerModel struct {
	Host          types.String `tfsdk:"host"`
	Port          types.Int64  `tfsdk:"port"`
	AdminUser     types.String `tfsdk:"admin_user"`
	AdminPassword types.String `tfsdk:"admin_password"`
}

func (p *socletest) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "socletest"
	resp.Version = "0.1.0"
}

func (p *socletest) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "Test equipment of socle: files and PostgreSQL databases.",
		Attributes: map[string]schema.Attribute{
			"host":           schema.StringAttribute{Optional: true, Description: "PostgreSQL host (loopback address or name)."},
			"port":           schema.Int64Attribute{Optional: true, Description: "PostgreSQL port (default 5432)."},
			"admin_user":     schema.StringAttribute{Optional: true, Description: "A role that may create roles and databases."},
			"admin_password": schema.StringAttribute{Optional: true, Sensitive: true},
		},
	}
}

func (p *socletest) Configure(ctx context.Context, req provider.ConfigureRequest, resp *provider.ConfigureResponse) {
	var m providerModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	resp.ResourceData = &m
}

func (p *socletest) Resources(context.Context) []func() resource.Resource {
	return []func() resource.Resource{newFile, newDatabase}
}

func (p *socletest) DataSources(context.Context) []func() datasource.DataSource { return nil }
