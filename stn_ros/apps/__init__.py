"""Entry points: stn_train, stn_evaluate, stn_export, stn_demo, stn_selfcheck, stn_replay."""
