{
  "signatures": [
    {
      "keyid": "ac954e4b8969fdd6a10c3637294139dd9b3f2cc424e2f689086dfc78d3e6e9d1",
      "sig": "09VABsFHGpmjB0pIcaUbgK0esYSI2B0O64RXD826bvFniK+qaOwmm57uaZNYe4yEdasXrVGgRcLvCxhZGaNHBQ=="
    }
  ]
}