// Package artifact builds an app once into an OCI image, stores it in socle's
// own registry (or pushes it to the app's registry), pins images named by tag
// to their digest, and unpacks images for runtimes that run them from a
// directory. The image digest is a release's artifact: what is built for the
// first environment is what every later one runs.
//
// # Building
//
// Builder.Build exports the platform repository at a revision into a fresh
// directory (never a working copy) and runs the app's build command there,
// with sh -c in apps/<app>/<build.dir>, under a timeout, with this environment
// and nothing else of socle's own (which may hold secrets):
//
//	PATH HOME USER LANG LC_ALL TMPDIR TZ XDG_CACHE_HOME, the Go toolchain's
//	GOROOT GOPATH GOCACHE GOMODCACHE GOPROXY GOSUMDB GOPRIVATE GONOSUMDB
//	GONOPROXY GOINSECURE GOFLAGS GOTOOLCHAIN GOAMD64 GOARM64 GOEXPERIMENT,
//	proxies and SSL_CERT_FILE/SSL_CERT_DIR, when socle has them;
//	CGO_ENABLED=0, so that Go binaries are static and run from an unpacked image;
//	GOFLAGS with -buildvcs=false added, so that a data directory inside some
//	  other Git checkout does not stamp its state into the binary;
//	SOCLE_OUT       the directory the command writes its output to;
//	SOCLE_REVISION  the full sha of the platform revision;
//	SOCLE_APP       the app's name;
//	SOCLE_SOURCE    the app's source hash;
//	then Config.Env.
//
// Without HOME, GOCACHE and GOPATH default to <Dir>/cache, so that Go builds
// stay cached across builds.
//
// Its output and error go to <Dir>/logs/<app>/<revision>.log; a failure
// returns a *BuildError that carries the log's tail, and stores no image.
//
// # The image
//
// One gzipped layer on an empty base: everything in $SOCLE_OUT under /app (files keep
// their executable bit, owner root, timestamps at the Unix epoch, entries
// sorted), so building the same output twice gives the same digest. The
// config says:
//
//   - Entrypoint: the Score container's command, when it holds no ${...}
//     placeholder; else /app/<app> if the build wrote that executable; else
//     the only executable it wrote. A build whose entrypoint cannot be chosen
//     this way fails, unless every built container sets its command.
//   - Cmd: the container's args, when they hold no placeholder.
//   - Env: the container's variables that hold no ${...} placeholder, sorted.
//     socle resolves placeholders (resources, secrets) when it runs the image
//     and injects them then: the image carries no secret and no value that
//     depends on the environment it runs in.
//   - WorkingDir /app; OS and architecture of this machine, where the build ran.
//   - Labels dev.socle.app, dev.socle.revision, dev.socle.source and
//     org.opencontainers.image.title/revision.
//
// Entrypoint, args and variables come from the Score container only when one
// container of the app is built by socle (image "."); with several, they share
// the image and the runtime applies each one's own.
//
// The image goes to socle's registry as <Host>/apps/<app>, tagged with the
// revision it was built from, and, when build.image is set, is also pushed to
// <build.image>:<revision>; Artifact.Ref then names that repository.
//
// # Several images
//
// A release records one artifact digest. When a workload's containers run
// different images (two external images, or socle's build beside an
// external one), that digest names a pin list (PinsType): an OCI artifact
// in <Host>/apps/<app> whose config gives each container its image by
// digest. Promoting, approving and rolling back the one digest carry every
// container's image; WritePins and ReadPins write and read it. Containers
// that all run one image keep that image's digest as the artifact.
//
// # Reuse
//
// A build is keyed by (app, source hash, platform): a revision that does not
// change apps/<app>/ reuses the image of the first revision that built it,
// without running the command. A build that reads files outside its app's
// directory is not rebuilt when only those change.
//
// # Data
//
// The server passes directories under its data directory; the usual layout:
//
//	<data>/registry/             socle's registry (package registry)
//	<data>/artifacts/builds/     <app>/<key>.json: one record per image built, the cache
//	<data>/artifacts/logs/       <app>/<revision>.log: the last build log of each revision
//	<data>/artifacts/work/       exports and outputs of builds in progress, removed after each
//	<data>/rootfs/               sha256-<hex>/{rootfs/,config.json}: unpacked images
package artifact
