#!/usr/bin/env node
// The Switchyard CNI plugin: put it (or a link to it named switchyard-cni) in the runtime's
// CNI plugin directory and name it as "type": "switchyard-cni" in a network configuration.
import '../dist/plugins/cni/cli.js'
