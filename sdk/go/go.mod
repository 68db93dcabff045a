module sysgate

go 1.19
