// Command terraform-provider-socletest is a small real Terraform provider
// that socle's tests build from source and install through a filesystem
// mirror, as air-gapped companies install theirs: no provider can be
// downloaded on the machines the tests run on. Its resources do real work
// with a real Read, so that drift made by hand (a file deleted, a database
// dropped) shows in a refresh.
//
// It is test equipment, not part of socle's binary.
package main

import (
	"context"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
)

// Address is where Terraform finds the provider: a hostname that is no
// registry, so that nobody mistakes it for something downloadable.
const Address = "socle.test/socle/socletest"

func main() {
	err := providerserver.Serve(context.Background(), newProvider, providerserver.ServeOpts{Address: Address})
	if err != nil {
		log.Fatal(err)
	}
}
