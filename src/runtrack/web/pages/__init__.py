"""The dashboard's pages, one module per page family; :mod:`runtrack.web.dashboard`
assembles their routers."""
