module kreflex.dev/plugins

go 1.24
