// Package registry is socle's own OCI registry: a content-addressed store of
// blobs and manifests in a directory, and an http.Handler serving it under
// /v2/ with the OCI distribution API, so that go-containerregistry, crane,
// docker and Kubernetes pull from socle what socle built.
//
// The store lives in one directory (normally <data>/registry):
//
//	blobs/sha256/<hex>                                  layers, configs and manifests, by digest
//	repositories/<name>/_manifests/sha256/<hex>         the manifest <hex> belongs to <name>; holds its media type
//	repositories/<name>/_tags/<tag>                     holds the digest the tag points to
//	uploads/<id>                                        blob uploads in progress
//
// Every file is written to a temporary name, synced and renamed, so a crash
// leaves either the old state or the new one. Blobs are shared by all
// repositories (socle is one tenant); a manifest is only served from the
// repositories it was pushed to. Blobs are never deleted: there is no garbage
// collection yet.
//
// Content is kept by sha256 digest only. A well-formed digest of another
// algorithm (sha512:…) names content the store does not hold: reads answer
// 404 BLOB_UNKNOWN or MANIFEST_UNKNOWN, writes 400 DIGEST_INVALID saying the
// algorithm is unsupported. Every error has the distribution spec's shape,
// {"errors":[{"code","message","detail"}]}.
package registry
