"""The analytic world: prisms on a table, their analytic grasp labels, synthetic camera frames of them."""
