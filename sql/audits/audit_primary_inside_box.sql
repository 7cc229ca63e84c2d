-- description: primary-sample stars outside the measured CMD box of their class, or failing an S/N, quality or variable cut.
with primary_sample as (
    select p.*, f.width_mag
    from sel_primary p
    join sel_cmd_fit f using (class)
),

final as (
    select source_id, class, cmd_resid_mag, width_mag
    from primary_sample
    where abs(cmd_resid_mag) > width_mag + 1e-9 or not is_candidate
)

select * from final
