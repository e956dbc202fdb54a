package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

var _ resource.Resource = (*file)(nil)

// file is socletest_file: a file on the machine terraform runs on.
type file struct{}

func newFile() resource.Resource { return &file{} }

type fileModel struct {
	ID      types.String `tfsdk:"id"`
	Path    types.String `tfsdk:"path"`
	Content types.String `tfsdk:"content"`
	SHA256  types.String `tfsdk:"sha256"`
}

func (r *file) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_file"
}

func (r *file) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		Description: "A file with the given content. Read reads it back: a file deleted by hand is created again, one edited by hand is rewritten.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{Computed: true, PlanModifiers: []planmodifier.String{stringplanmodifier.UseStateForUnknown()}},
			// Another path is another file: the old one is removed.
			"path":    schema.StringAttribute{Required: true, PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()}},
			"content": schema.StringAttribute{Required: true},
			"sha256":  schema.StringAttribute{Computed: true, Description: "SHA-256 of the content, hex."},
		},
	}
}

func (r *file) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	apply(ctx, req.Plan, &resp.State, &resp.Diagnostics)
}

func (r *file) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	var m fileModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	data, err := os.ReadFile(m.Path.ValueString())
	if errors.Is(err, fs.ErrNotExist) {
		// Gone outside terraform: the next plan creates it again.
		resp.State.RemoveResource(ctx)
		return
	}
	if err != nil {
		resp.Diagnostics.AddError("reading the file", err.Error())
		return
	}
	m.Content = types.StringValue(string(data))
	m.SHA256 = types.StringValue(sum(data))
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}

func (r *file) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	apply(ctx, req.Plan, &resp.State, &resp.Diagnostics)
}

func (r *file) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	var m fileModel
	resp.Diagnostics.Append(req.State.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	if err := os.Remove(m.Path.ValueString()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		resp.Diagnostics.AddError("removing the file", err.Error())
	}
}

// apply writes the planned file and records it in state: Create and
// Update do the same.
func apply(ctx context.Context, plan tfsdk.Plan, state *tfsdk.State, diags *diag.Diagnostics) {
	var m fileModel
	diags.Append(plan.Get(ctx, &m)...)
	if diags.HasError() {
		return
	}
	if err := writeFile(&m); err != nil {
		diags.AddError("writing the file", err.Error())
		return
	}
	diags.Append(state.Set(ctx, &m)...)
}

// writeFile writes m's content at its path and fills in what is computed.
func writeFile(m *fileModel) error {
	p := m.Path.ValueString()
	data := []byte(m.Content.ValueString())
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	m.ID = types.StringValue(p)
	m.SHA256 = types.StringValue(sum(data))
	return nil
}

func sum(data []byte) string {
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}
