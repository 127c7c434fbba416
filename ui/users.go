package ui

import (
	"slices"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/shardlift/shardlift/engine"
)

// usersPanel lists the source's users and roles, which Shardlift does not migrate,
// with a button that copies them as mongosh commands: the cutover step shows it
// before the applications move, the summary once more.
type usersPanel struct {
	list   *fyne.Container
	copyJS *widget.Button
	users  []engine.User
	built  bool
	obj    fyne.CanvasObject
}

// newUsersPanel says in where that the commands are on the clipboard.
func newUsersPanel(a *App, where *banner) *usersPanel {
	p := &usersPanel{list: tight()}
	p.copyJS = widget.NewButtonWithIcon("Copy as mongosh commands", theme.ContentCopyIcon(), func() {
		a.fa.Clipboard().SetContent(mongoshScript(p.users))
		where.show(levelInfo, "The mongosh commands are on the clipboard: run them against the destination, each prompts for its user's password.")
	})
	p.obj = container.NewVBox(p.list, container.NewHBox(p.copyJS))
	return p
}

func (p *usersPanel) view() fyne.CanvasObject { return p.obj }

// show lists users; it rebuilds the list only when they changed.
func (p *usersPanel) show(users []engine.User) {
	if p.built && slices.EqualFunc(users, p.users, func(a, b engine.User) bool {
		return a.Name == b.Name && a.DB == b.DB && a.IsRole == b.IsRole && slices.Equal(a.Roles, b.Roles)
	}) {
		return
	}
	p.built, p.users = true, users
	p.list.RemoveAll()
	if len(users) == 0 {
		p.list.Add(widget.NewLabel("The source has no users or roles to re-create."))
		p.copyJS.Hide()
		return
	}
	for _, u := range users {
		p.list.Add(wrapped("•  " + userText(u)))
	}
	p.copyJS.Show()
}
