package source

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// serveSSH runs an SSH server on the loopback interface that lets the holder
// of clientKey run the real git-upload-pack and git-receive-pack, as a git
// host does. It returns its address and host key. (An SSH server written with
// x/crypto/ssh rather than sshd, which is seldom installed where tests run.)
func serveSSH(t *testing.T, clientKey ssh.PublicKey) (string, ssh.PublicKey) {
	t.Helper()
	needGit(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	host, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if bytes.Equal(k.Marshal(), clientKey.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(host)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSSHConn(t, conn, cfg)
		}
	}()
	return ln.Addr().String(), host.PublicKey()
}

func serveSSHConn(t *testing.T, conn net.Conn, cfg *ssh.ServerConfig) {
	_, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, reqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			defer ch.Close()
			for req := range reqs {
				if req.Type != "exec" {
					req.Reply(req.Type == "env", nil)
					continue
				}
				var exec struct{ Command string }
				if err := ssh.Unmarshal(req.Payload, &exec); err != nil {
					req.Reply(false, nil)
					return
				}
				req.Reply(true, nil)
				status := runGitService(t, exec.Command, ch)
				ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
				return
			}
		}()
	}
}

// runGitService runs a command such as git-upload-pack '/srv/platform.git'
// with the channel as its standard streams.
func runGitService(t *testing.T, command string, ch ssh.Channel) uint32 {
	prog, arg, _ := strings.Cut(command, " ")
	if prog != "git-upload-pack" && prog != "git-receive-pack" {
		return 127
	}
	cmd := gitCmd("", nil, strings.TrimPrefix(prog, "git-"), strings.Trim(arg, "'"))
	cmd.Stdout, cmd.Stderr = ch, logWriter{t}
	in, err := cmd.StdinPipe()
	if err != nil {
		return 1
	}
	go func() { io.Copy(in, ch); in.Close() }()
	if err := cmd.Run(); err != nil {
		return 1
	}
	return 0
}

func TestSSH(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, bare, up := newBareOrigin(t)
	first := up.Commit(t, "first", firstTree)
	runGit(t, up.Dir(), "push", "-q", "origin", "main")

	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	addr, hostKey := serveSSH(t, signer.PublicKey())
	auth := &gitssh.PublicKeys{User: "git", Signer: signer,
		HostKeyCallbackHelper: gitssh.HostKeyCallbackHelper{HostKeyCallback: ssh.FixedHostKey(hostKey)}}
	url := "ssh://git@" + addr + filepath.ToSlash(bare)

	r, err := Open(ctx, Options{URL: url, Dir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	if head, err := r.Head(); err != nil || head.SHA != first || r.Branch() != "main" {
		t.Fatalf("head = %s on %s, %v; want %s on main", head.SHA, r.Branch(), err, first)
	}
	second := up.Commit(t, "second", map[string]string{"apps/api/score.yaml": "api\n"})
	runGit(t, up.Dir(), "push", "-q", "origin", "main")
	if rev, changed, err := r.Fetch(ctx); err != nil || !changed || rev.SHA != second {
		t.Fatalf("Fetch = %s, %v, %v; want %s", rev.SHA, changed, err, second)
	}
	rev, err := r.Commit(ctx, Change{Files: map[string][]byte{"releases/dev.yaml": []byte("web: 1\n")}, Author: "socle", Message: "promote", Parent: second})
	if err != nil {
		t.Fatal(err)
	}
	if got := runGit(t, bare, "rev-parse", "main"); got != rev.SHA {
		t.Errorf("server's main = %s, want %s", got, rev.SHA)
	}

	// Another key is turned away.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherSigner, _ := ssh.NewSignerFromKey(other)
	stranger := &gitssh.PublicKeys{User: "git", Signer: otherSigner, HostKeyCallbackHelper: auth.HostKeyCallbackHelper}
	if _, err := Open(ctx, Options{URL: url, Dir: t.TempDir(), Auth: stranger}); err == nil {
		t.Error("Open with an unknown key succeeded")
	}
}

// TestSSHWithoutAgent opens an SSH URL with no Auth and no SSH agent: an
// error, not a crash. (Not parallel: it changes the environment.)
func TestSSHWithoutAgent(t *testing.T) {
	for _, sock := range []string{"", filepath.Join(t.TempDir(), "no-agent.sock")} {
		t.Setenv("SSH_AUTH_SOCK", sock)
		for _, url := range []string{"ssh://git@127.0.0.1:1/platform.git", "git@127.0.0.1:platform.git"} {
			if _, err := Open(context.Background(), Options{URL: url, Dir: t.TempDir()}); err == nil {
				t.Errorf("Open(%s) with SSH_AUTH_SOCK=%q succeeded", url, sock)
			}
		}
	}
}
