"""Plugins that ship with omnisdk; they use the same hooks as outside plugins."""
