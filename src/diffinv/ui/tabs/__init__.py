"""The app's tabs: one file each, each exposing ``TAB``."""
