package spec

import (
	"strings"
	"testing"
	"testing/fstest"
)

func routedRepo(shopApp, cartApp string) fstest.MapFS {
	score := func(name string) string {
		return "apiVersion: score.dev/v1b1\nmetadata: {name: " + name + "}\ncontainers:\n  main:\n    image: nginx@sha256:0123456789012345678901234567890123456789012345678901234567890123\n" +
			"service:\n  ports:\n    http: {port: 8080}\n    admin: {port: 9090}\n"
	}
	fsys := fstest.MapFS{
		"socle.yaml":           {Data: []byte(minimalPlatform)},
		"teams.yaml":           {Data: []byte(minimalTeams)},
		"apps/shop/score.yaml": {Data: []byte(score("shop"))},
		"apps/cart/score.yaml": {Data: []byte(score("cart"))},
	}
	if shopApp != "" {
		fsys["apps/shop/socle.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: socle.dev/v1\nkind: App\nowner: core\n" + shopApp)}
	}
	if cartApp != "" {
		fsys["apps/cart/socle.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: socle.dev/v1\nkind: App\nowner: core\n" + cartApp)}
	}
	return fsys
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	shop := "routes:\n  - {path: /console, port: admin}\nenvironments:\n  prod:\n    routes:\n      - {host: shop.example.com}\n      - {host: www.shop.example.com}\n"
	cart := "environments:\n  prod:\n    routes:\n      - {host: shop.example.com, path: /cart, strip: true}\n"
	r, ps := Load(routedRepo(shop, cart))
	if err := ps.Err(); err != nil {
		t.Fatal(err)
	}
	if got := r.App("shop").RoutesIn("prod"); len(got) != 2 || got[0].Host != "shop.example.com" {
		t.Errorf("shop in prod: %+v", got)
	}
	if got := r.App("shop").RoutesIn("dev"); len(got) != 1 || got[0].Path != "/console" || got[0].Port != "admin" {
		t.Errorf("shop in dev: %+v", got)
	}
	if got := r.App("cart").RoutesIn("dev"); len(got) != 0 {
		t.Errorf("cart in dev: %+v", got)
	}

	for _, tt := range []struct{ name, shop, cart, want string }{
		{"two apps on one host and path", "routes:\n  - {host: shop.example.com}\n", "routes:\n  - {host: shop.example.com, path: /}\n",
			"apps/shop/socle.yaml:5:5: routes[0]: in dev, host shop.example.com is routed to both cart (apps/cart/socle.yaml:5) and shop: two apps cannot share a host and path"},
		{"two apps on one prefix in prod", "environments:\n  prod:\n    routes: [{host: a.example.com, path: /api/}]\n", "routes:\n  - {host: a.example.com, path: /api, strip: true}\n",
			"apps/shop/socle.yaml:6:14: environments.prod.routes[0]: in prod, host a.example.com and path /api is routed to both cart (apps/cart/socle.yaml:5) and shop"},
		{"one app twice", "routes:\n  - {host: a.example.com}\n  - {host: a.example.com, port: admin}\n", "",
			"apps/shop/socle.yaml:6:5: routes[1]: in dev, host a.example.com is also routed to shop by apps/shop/socle.yaml:5"},
		{"bad host", "routes:\n  - {host: Shop.Example.com}\n", "", `apps/shop/socle.yaml:5:12: routes[0].host: host "Shop.Example.com": label "Shop"`},
		{"host with port", "routes:\n  - {host: \"shop.example.com:80\"}\n", "", `routes[0].host: host "shop.example.com:80"`},
		{"bad path", "routes:\n  - {host: a.example.com, path: /a/../b}\n", "", `apps/shop/socle.yaml:5:33: routes[0].path: path "/a/../b": segment ".."`},
		{"relative path", "routes:\n  - {path: api}\n", "", `routes[0].path: "api" does not have the expected form`},
		{"unknown port", "routes:\n  - {path: /x, port: grpc}\n", "", `apps/shop/socle.yaml:5:22: routes[0].port: port "grpc": the workload's service has no such port (it has admin, http)`},
		{"strip nothing", "routes:\n  - {host: a.example.com, strip: true}\n", "", `routes[0].strip: strip needs a path prefix to strip`},
		{"own host", "routes:\n  - {port: admin}\n", "", `routes[0]: a route with neither host nor path is the app's own host`},
		// An app cannot take another app's or environment's host, nor a
		// host another app has in another environment.
		{"another app's host", "environments:\n  dev:\n    routes: [{host: cart.prod.localhost}]\n", "",
			"apps/shop/socle.yaml:6:14: environments.dev.routes[0]: in dev, host cart.prod.localhost is socle's host of app cart in prod: an app's routes cannot take another app's or environment's host"},
		{"another port's host under a prefix", "environments:\n  dev:\n    routes: [{host: admin.cart.prod.apps.example.com, path: /x}]\n", "",
			"in dev, host admin.cart.prod.apps.example.com is socle's host of app cart in prod"},
		{"its own host in another environment", "environments:\n  dev:\n    routes: [{host: shop.prod.example.com}]\n", "",
			"in dev, host shop.prod.example.com is socle's host of app shop in prod"},
		{"one host in two environments", "environments:\n  dev:\n    routes: [{host: pay.example.com}]\n", "environments:\n  prod:\n    routes: [{host: pay.example.com}]\n",
			"apps/shop/socle.yaml:6:14: environments.dev.routes[0]: host pay.example.com is routed to cart in prod (apps/cart/socle.yaml:6) and to shop in dev: two apps cannot share a host and path, in any environments"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, ps := Load(routedRepo(tt.shop, tt.cart))
			err := ps.Err()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("want a problem containing\n  %s\ngot:\n%v", tt.want, err)
			}
		})
	}
}
