package source

import (
	"errors"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// Errors that callers test with errors.Is.
var (
	// ErrUnknownRevision means that no commit of the mirror matches a sha.
	ErrUnknownRevision = errors.New("unknown revision")
	// ErrAmbiguousRevision means that an abbreviated sha matches more than
	// one commit; a longer prefix resolves it.
	ErrAmbiguousRevision = errors.New("ambiguous revision")
	// ErrConflict means that the branch no longer points where a Change
	// expected it to (Change.Parent): someone else committed first.
	ErrConflict = errors.New("branch has moved")
	// ErrDirtyWorktree means that a commit to a repository on this machine
	// would overwrite uncommitted changes in that repository's working tree.
	ErrDirtyWorktree = errors.New("uncommitted changes in the working tree would be overwritten")
)

// Revision is one commit of the platform repository.
type Revision struct {
	SHA     string    `json:"sha"`
	Author  string    `json:"author"`  // name
	Email   string    `json:"email"`   // author's email
	Time    time.Time `json:"time"`    // author time
	Message string    `json:"message"` // full message, trimmed
}

// Short returns the first 7 characters of the SHA, as git shows it.
func (r Revision) Short() string {
	if len(r.SHA) > 7 {
		return r.SHA[:7]
	}
	return r.SHA
}

// Subject returns the first line of the message.
func (r Revision) Subject() string {
	subject, _, _ := strings.Cut(r.Message, "\n")
	return strings.TrimSpace(subject)
}

func newRevision(c *object.Commit) Revision {
	return Revision{
		SHA:     c.Hash.String(),
		Author:  c.Author.Name,
		Email:   c.Author.Email,
		Time:    c.Author.When,
		Message: strings.TrimSpace(c.Message),
	}
}

// revisionOf reads the commit h from s.
func revisionOf(s storer.EncodedObjectStorer, h plumbing.Hash) (Revision, error) {
	c, err := object.GetCommit(s, h)
	if err != nil {
		return Revision{}, err
	}
	return newRevision(c), nil
}
