variable "env" { type = string }
variable "zone" { type = string }
variable "hub" { type = string }
variable "label" { type = string }
variable "size" {
  type    = string
  default = "small"
}
