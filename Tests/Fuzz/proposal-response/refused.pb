
”no key