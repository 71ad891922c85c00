"""stare_bringup: the STARE node graph (launch file, parameter files, `stare-bringup`)."""
